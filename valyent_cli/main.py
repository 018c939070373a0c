"""The root command: global options, the command groups, and the one error handler."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from valyent_cli import __version__
from valyent_cli.cli import complete
from valyent_cli.cli.exits import EXIT_CODES_HELP, Exit

HELP = f"""The command line for Valyent Cloud: fleets of micro-VM machines, their gateways, files, logs and commands.

Start offline with the local sandbox: `valyent local start`, then `valyent machines create --image nginx`.

{EXIT_CODES_HELP}
"""

app = typer.Typer(
    name="valyent",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"valyent {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Profile to use (default: the active one; env VALYENT_PROFILE).",
                                  autocompletion=complete.profiles)
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="API base URL (env VALYENT_API_URL).")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Namespace sent with every request (env VALYENT_NAMESPACE).")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show each HTTP exchange (token redacted) and tracebacks, on stderr.")
    ] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="Never use colour (also: NO_COLOR).")] = False,
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    from valyent_cli.cli.context import AppContext

    ctx.obj = AppContext(profile=profile, endpoint=endpoint, namespace=namespace, debug=debug, no_color=no_color)


def _register() -> None:
    from valyent_cli.commands import auth, fleets, fs, gateways, local, logs, machines, profiles

    app.add_typer(fleets.app)
    app.add_typer(machines.app)
    app.add_typer(gateways.app)
    app.add_typer(fs.app)
    app.add_typer(logs.app)
    app.add_typer(auth.app)
    app.add_typer(profiles.app)
    app.add_typer(local.app)
    try:
        from valyent_cli.commands import completion
    except ImportError:
        pass
    else:
        app.add_typer(completion.app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map every error a user can cause to a message and a documented exit code."""
    from valyent_cli.cli.errors import handle

    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or os.environ.get("VALYENT_DEBUG") == "1"
    ctrl_c: list[bool] = []
    previous = _trap_sigint(ctrl_c)
    try:
        code = app(args=argv, standalone_mode=False, prog_name="valyent")
        if code == Exit.INTERRUPTED and ctrl_c:
            # typer turns a Ctrl-C inside a command into a silent Exit(130): say it, as the handler does.
            sys.stderr.write("\nInterrupted.\n")
    except BaseException as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        code = handle(exc, debug=debug)
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGINT, previous)
    if isinstance(code, int):
        sys.exit(code)
    sys.exit(Exit.OK)


def _trap_sigint(seen: list[bool]):  # -> the previous handler, to restore, or None
    """Note a Ctrl-C (then raise KeyboardInterrupt as Python does), so that main() can tell it from a command that
    exits 130 of its own (`machines exec` passing on a remote code)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        return None

    def on_sigint(signum: int, frame: object) -> None:
        seen.append(True)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    return previous
