"""The `valyent` program's entry point: answers what needs no command tree before loading one.

`valyent --version` and a completion script's request for values are answered here, before typer is imported
(a completion has a budget of a few hundred milliseconds; scripts call `--version` in loops). Everything else goes
to :func:`valyent_cli.main.main`.

Run as the program (``main()`` with no arguments: the console script, ``python -m valyent_cli``), the process ends
with a *fast exit* once the command is done: the logging handlers and stdout/stderr are flushed, then
``os._exit``. The interpreter's own finalization (tearing down ~300 modules, typer's, click's and httpx's among
them, and collecting their objects) costs ~20-25 ms, a sixth of `valyent fleets list --json`; mypy does the same
for the same reason. Finalization runs as usual whenever skipping it could lose something: a thread that is
not a daemon still running (the interpreter would wait for it), a profiler or tracer (coverage, cProfile, a
debugger) that writes its results at exit, development mode (``-X dev``: its warnings about unclosed resources
come at finalization), an exit code that is not a number, or a flush that fails. Every file the CLI writes is
closed by the command that writes it, and no module of the CLI registers an ``atexit`` callback (the one library
callback on its path, logging's, is called here; tests/cli/test_fast_exit.py checks both). ``main(argv)`` called from Python (the tests' in-process runner) raises
SystemExit as before.
"""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    if argv is not None:
        _run(argv)
        return
    try:
        _run(sys.argv[1:])
    except SystemExit as exc:
        fast_exit(exc.code)
        raise


def _run(args: list[str]) -> None:
    if args in (["--version"], ["-V"]):
        from valyent_cli import __version__

        sys.stdout.write(f"valyent {__version__}\n")
        sys.stdout.flush()
        sys.exit(0)
    if os.environ.get("_VALYENT_COMPLETE_VALUES"):
        from valyent_cli.cli import complete

        complete.serve_if_asked()
    from valyent_cli.main import main as run

    run(args)


def _watched() -> bool:
    """A tracer, profiler or debugger is attached (``sys.settrace``/``setprofile``, or a ``sys.monitoring`` tool
    from Python 3.12: coverage's sysmon core): it writes its results at exit."""
    if sys.gettrace() is not None or sys.getprofile() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)
    return monitoring is not None and any(monitoring.get_tool(tool) is not None for tool in range(6))


def fast_exit(code: object) -> None:
    """End the process now with ``code`` (None is 0), skipping the interpreter's finalization, when nothing can
    be lost by it (see the module's docstring); otherwise return, and the caller exits as usual."""
    if code is None:
        code = 0
    if not isinstance(code, int) or sys.flags.dev_mode or _watched():
        return
    threading = sys.modules.get("threading")
    if threading is not None:
        main_thread = threading.main_thread()
        if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
            return
    logging = sys.modules.get("logging")
    try:
        if logging is not None:
            logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # a closed pipe or stream: the usual exit says and does what it always did
        return
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
