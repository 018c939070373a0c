"""The program's fast exit (`valyent_cli/entry.py`): run as the program, `valyent` ends with `os._exit` once its
command is done, after flushing what it wrote, and only when skipping the interpreter's finalization loses
nothing; otherwise it exits as usual.

Each probe runs the real entry point as the console script does (``main()`` with the words in ``sys.argv``) in
a fresh interpreter that registers an atexit handler first: the handler prints ``finalized`` to stderr, so its
absence shows the fast exit, its presence the usual one.
"""

from __future__ import annotations

import subprocess
import sys

from support.cli import run_inproc, run_python
from support.env import cli_environ, with_repo_path

FINALIZED = "finalized"

PROBE = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("finalized\\n"))
{setup}
sys.argv = ["valyent", *sys.argv[1:]]
from valyent_cli.entry import main
main()
"""


def probe(*args: str, setup: str = "", env: dict, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    code = PROBE.format(setup=setup)
    if not flags:
        return run_python(code, *args, env=env)
    return subprocess.run([sys.executable, *flags, "-c", code, *args], env=with_repo_path(env),
                          capture_output=True, text=True, timeout=60)


def test_the_program_skips_finalization_and_what_it_printed_arrives_whole(tmp_path):
    env = cli_environ(tmp_path)
    # the root help is ~3 KB: to a pipe it sits in stdout's buffer until the exit flushes it
    done = probe("--help", env=env)
    assert done.returncode == 0, done.stderr
    assert FINALIZED not in done.stderr
    assert done.stdout == run_inproc("--help", env=env).stdout
    from valyent_cli.groups import GROUPS

    assert all(group in done.stdout for group in GROUPS)


def test_the_exit_code_and_the_error_survive_the_fast_exit(tmp_path):
    env = cli_environ(tmp_path)
    done = probe("fleets", "no-such-verb", env=env)
    assert done.returncode == 2
    assert "No such command 'no-such-verb'" in done.stderr
    assert FINALIZED not in done.stderr
    version = probe("--version", env=env)
    assert version.returncode == 0 and version.stdout.startswith("valyent ")
    assert FINALIZED not in version.stderr


def test_a_running_thread_that_is_not_a_daemon_is_waited_for(tmp_path):
    marker = tmp_path / "thread-finished"
    setup = (
        "import threading, time, pathlib\n"
        "def work():\n"
        "    time.sleep(0.3)\n"
        f"    pathlib.Path({str(marker)!r}).write_text('done')\n"
        "threading.Thread(target=work).start()\n"
    )
    done = probe("--version", setup=setup, env=cli_environ(tmp_path))
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "done"
    assert FINALIZED in done.stderr


def test_a_daemon_thread_does_not_keep_the_usual_exit(tmp_path):
    setup = "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
    done = probe("--version", setup=setup, env=cli_environ(tmp_path))
    assert done.returncode == 0
    assert FINALIZED not in done.stderr


def test_a_profiler_or_tracer_gets_its_exit(tmp_path):
    env = cli_environ(tmp_path)
    profiled = probe("--version", setup="sys.setprofile(lambda *a: None)", env=env)
    assert profiled.returncode == 0 and FINALIZED in profiled.stderr
    traced = probe("--version", setup="sys.settrace(lambda *a: None)", env=env)
    assert traced.returncode == 0 and FINALIZED in traced.stderr
    # cProfile writes its file after the program's main() returns
    out = tmp_path / "run.prof"
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "valyent_cli", "--version"],
                          env=with_repo_path(env), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0


def test_development_mode_keeps_the_usual_exit(tmp_path):
    done = probe("--version", env=cli_environ(tmp_path), flags=("-X", "dev"))
    assert done.returncode == 0, done.stderr
    assert FINALIZED in done.stderr


def test_buffered_log_records_are_flushed(tmp_path):
    log = tmp_path / "records.log"
    setup = (
        "import logging, logging.handlers\n"
        f"target = logging.FileHandler({str(log)!r})\n"
        "memory = logging.handlers.MemoryHandler(capacity=1000, target=target)\n"
        "logging.getLogger('probe').addHandler(memory)\n"
        "logging.getLogger('probe').warning('kept in memory until the exit')\n"
    )
    done = probe("--version", setup=setup, env=cli_environ(tmp_path))
    assert done.returncode == 0, done.stderr
    assert FINALIZED not in done.stderr
    assert "kept in memory until the exit" in log.read_text()


def test_an_exit_code_that_is_not_a_number_gets_the_usual_exit(tmp_path):
    from valyent_cli import entry

    # fast_exit() returns (the caller then exits as usual) for a message as exit code
    entry.fast_exit("a message")
    setup = "import valyent_cli.entry as e\ne._run = lambda args: sys.exit('stopped: ' + ' '.join(args))\n"
    done = probe("x", setup=setup, env=cli_environ(tmp_path))
    assert done.returncode == 1
    assert "stopped: x" in done.stderr and FINALIZED in done.stderr


def test_called_from_python_with_words_it_raises_systemexit(tmp_path, monkeypatch):
    from valyent_cli import entry

    monkeypatch.setenv("VALYENT_CONFIG_DIR", str(tmp_path))
    try:
        entry.main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    else:  # pragma: no cover
        raise AssertionError("main(argv) returned")


def test_a_monitoring_tool_gets_its_exit(tmp_path):
    # Python 3.12's sys.monitoring (coverage's sysmon core, debuggers): simulated on older interpreters
    setup = ("import types\n"
             "if not hasattr(sys, 'monitoring'):\n"
             "    sys.monitoring = types.SimpleNamespace(get_tool=lambda tool: 'coverage' if tool == 1 else None)\n"
             "else:\n"
             "    sys.monitoring.use_tool_id(1, 'coverage')\n")
    done = probe("--version", setup=setup, env=cli_environ(tmp_path))
    assert done.returncode == 0, done.stderr
    assert FINALIZED in done.stderr


def test_no_module_of_the_cli_relies_on_the_usual_exit():
    """What the fast exit skips besides finalization: atexit callbacks and finalizers; the CLI's code uses none
    (the sandbox server's upload files are closed by their handlers)."""
    from support.env import REPO

    offenders = []
    for path in sorted((REPO / "valyent_cli").rglob("*.py")):
        text = path.read_text()
        for needle in ("atexit", "weakref.finalize", "__del__"):
            if needle in text and path.name != "entry.py":
                offenders.append(f"{path.relative_to(REPO)}: {needle}")
    assert offenders == []


def test_a_flush_that_fails_gets_the_usual_exit(tmp_path):
    # stdout a pipe whose reader is gone, with text waiting in its buffer: the flush fails with EPIPE
    setup = "import os\nr, w = os.pipe()\nos.close(r)\nsys.stdout = open(w, 'w')\nsys.stdout.write('pending')\n"
    done = probe("fleets", "no-such-verb", setup=setup, env=cli_environ(tmp_path))
    assert FINALIZED in done.stderr
    assert "No such command 'no-such-verb'" in done.stderr
    # the usual exit tries the flush again, and Python reports it as it always did (exit 120)
    assert done.returncode == 120 and "BrokenPipeError" in done.stderr
