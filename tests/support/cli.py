"""The one way the tests run the CLI, in every mode, each run checked the same way: the API token of its
environment never shows in what it printed (except through `auth token`, the one command that prints it).

- ``run_cli(*args, env=...)``: a subprocess, `python -m valyent_cli ARGS`, stdout and stderr captured apart;
- ``Proc(args, env)``: a subprocess to watch while it runs (lines read in threads; wait for one, signal it);
- ``spawn(args, env, **popen_kwargs)``: a ``subprocess.Popen`` of the CLI, for the tests that read its pipes
  themselves (bytes, select); what they read, and what ``communicate`` returns, is checked when it exits;
  ``read_then_close``: a reader that goes away (`valyent ... | head`);
- ``run_main(argv, env)`` / ``run_main_bytes``: in this process, through the real entry point ``main(argv)`` and
  its error handler (for tests that run the CLI many times: a subprocess costs ~0.3 s of start-up);
- ``on_terminal(args, env)``: a subprocess on a pseudo-terminal (stdin, stdout and stderr; or stdout piped), for
  the terminal paths, with keys typed ahead (``typed=``) or in answer to a prompt (``answers=``);
- ``run_python(code, *argv, env=...)``: `python -c CODE ARGV` with the same environment; ``probe_main(args,
  watched, env)`` runs the CLI's ``main()`` that way and then inspects the interpreter (which modules it loaded,
  which commands typer built: tests/cli/test_imports.py, test_lean_run.py).

``ok(result)`` asserts exit 0 and no traceback, for any of their results. Environments: support/env.py.
"""

from __future__ import annotations

import io
import os
import pty
import re
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from support.env import REPO, with_repo_path
from support.util import wait_until

__all__ = ["ANSI", "REPO", "CliPopen", "Proc", "Result", "assert_no_token", "ok", "on_terminal", "probe_main", "read_then_close", "run_inproc",
           "run_cli", "run_main", "run_main_bytes", "run_python", "spawn"]

CLI = [sys.executable, "-m", "valyent_cli"]


def assert_no_token(args, env: dict, *outputs: str | bytes | None) -> None:
    """Every CLI run of the suite: the token of its environment never shows in its output, except through
    `auth token` (the one command that prints it). Tokens of 8 characters or fewer are too short to grep for."""
    token = env.get("VALYENT_API_TOKEN") or ""
    if len(token) <= 8:
        return
    words = [a if isinstance(a, str) else os.fsdecode(a) for a in args]
    if any(words[i : i + 2] == ["auth", "token"] for i in range(len(words))):
        return
    for output in outputs:
        if not output:
            continue
        needle = token.encode() if isinstance(output, bytes) else token
        assert needle not in output, f"the API token leaked into the output of `valyent {' '.join(words)}`"


def ok(result):
    """``result`` (of run_cli, run_main or run_python) after checking it exited 0 without a traceback."""
    code = result.returncode if hasattr(result, "returncode") else result.code
    out = result.stdout if hasattr(result, "stdout") else result.out
    err = result.stderr if hasattr(result, "stderr") else result.err
    if isinstance(err, bytes):
        err = err.decode("utf-8", "replace")
    assert code == 0, f"exit {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in err, err
    return result


# -- a subprocess ------------------------------------------------------------------------------------------------
def run_cli(*args: str | bytes, env: dict, input: str | bytes | None = None, timeout: float = 60,
            text: bool = True, cwd: str | os.PathLike | None = None,
            wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run `python -m valyent_cli ARGS` with `env`; stdout and stderr captured separately (str, or bytes with
    text=False). ``wrapper``: a command that runs it (`unshare ...`)."""
    if isinstance(input, bytes):
        text = False
    result = subprocess.run([*wrapper, *CLI, *args], env=with_repo_path(env), input=input, capture_output=True,
                            timeout=timeout, text=text, cwd=cwd)
    assert_no_token(args, env, result.stdout, result.stderr)
    return result


def run_python(code: str, *argv: str, env: dict, cwd: str | os.PathLike | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `python -c CODE ARGV` (a probe that runs the CLI's main() itself) with `env`; checked like run_cli, with
    ``argv`` as the command's words."""
    result = subprocess.run([sys.executable, "-c", code, *argv], env=with_repo_path(env), capture_output=True,
                            text=True, timeout=timeout, cwd=cwd)
    assert_no_token(argv, env, result.stdout, result.stderr)
    return result


# -- a probe: the CLI's main() run in a fresh interpreter that is then inspected -----------------------------------
PROBE = """
import json, sys
watched = json.loads(sys.argv[1])
sys.argv = ["valyent", *json.loads(sys.argv[2])]
import typer.main
built = []
real = typer.main.get_command
def spy(app):  # what main() hands to typer: the names of each group's commands
    built.extend((g.typer_instance.info.name, [c.name for c in g.typer_instance.registered_commands])
                 for g in app.registered_groups)
    return real(app)
typer.main.get_command = spy
from valyent_cli.main import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "built": built, "loaded": sorted(m for m in watched if m in sys.modules)}),
      file=sys.stderr)
"""


def probe_main(args: list[str], watched: list[str], env: dict, cwd: str | os.PathLike | None = None) -> dict:
    """Run `valyent ARGS` through main() in a fresh interpreter (checked like run_cli); return its exit ``code``,
    the groups typer was given with their commands (``built``), which of the ``watched`` modules it ``loaded``,
    and its ``stdout`` and ``stderr``."""
    import json

    import pytest

    proc = run_python(PROBE, json.dumps(watched), json.dumps(args), env=env, cwd=cwd)
    try:
        result = json.loads(proc.stderr.strip().splitlines()[-1])
    except (ValueError, IndexError):
        pytest.fail(f"the probe failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {**result, "stdout": proc.stdout, "stderr": proc.stderr}


# -- a subprocess to watch ---------------------------------------------------------------------------------------
class _Recorded:
    """A pipe of a CliPopen: reads go through, and what was read is kept for the token check."""

    def __init__(self, stream, seen: list) -> None:
        self._stream = stream
        self._seen = seen

    def read(self, *args):
        data = self._stream.read(*args)
        self._seen.append(data)
        return data

    def readline(self, *args):
        data = self._stream.readline(*args)
        self._seen.append(data)
        return data

    def __iter__(self):
        return iter(self.readline, self._stream.read(0))

    def __getattr__(self, name):
        return getattr(self._stream, name)


class CliPopen(subprocess.Popen):
    """`python -m valyent_cli ARGS` as a Popen whose output (what the test read of its pipes, and what
    ``communicate`` returned) is checked for the token when it has exited."""

    def __init__(self, args, env: dict, **kwargs) -> None:
        self.cli_args = list(args)
        self.cli_env = env
        self._seen: list = []
        super().__init__([*CLI, *args], env=with_repo_path(env), **kwargs)
        if self.stdout is not None:
            self.stdout = _Recorded(self.stdout, self._seen)
        if self.stderr is not None:
            self.stderr = _Recorded(self.stderr, self._seen)

    def communicate(self, *args, **kwargs):
        out, err = super().communicate(*args, **kwargs)
        self._seen += [out, err]
        self._check()
        return out, err

    def wait(self, *args, **kwargs):
        code = super().wait(*args, **kwargs)
        self._check()
        return code

    def _check(self) -> None:
        texts = [os.fsdecode(s) if isinstance(s, bytes) else s for s in self._seen if s]
        assert_no_token(self.cli_args, self.cli_env, "".join(texts))


def spawn(args: list[str | bytes], env: dict, **popen_kwargs) -> CliPopen:
    """Start `valyent ARGS` with ``env`` (stdin from /dev/null unless given); see CliPopen."""
    popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
    return CliPopen(args, env, **popen_kwargs)


def read_then_close(args: list[str], env: dict, read) -> tuple[int, str]:
    """`valyent ARGS | head`: ``read(stdout)`` takes what the reader wants (it must get something), then the pipe
    closes; the exit code and stderr once it has ended (within 10 s)."""
    proc = spawn(args, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert read(proc.stdout), "nothing to read before the pipe closed"
        proc.stdout.close()
        err = proc.stderr.read().decode()
        return proc.wait(10), err
    finally:
        if proc.poll() is None:
            proc.kill()


class Proc:
    """A CLI process to watch while it runs: its stdout and stderr read line by line in threads, so a test can
    wait for a line, send a signal, then check everything it printed."""

    def __init__(self, args: list[str], env: dict, cwd: str | None = None) -> None:
        self.args = args
        self.env = env
        self.proc = subprocess.Popen(
            [*CLI, *args], env=with_repo_path(env), cwd=cwd,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True)]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 20, what: str = "a condition"):
        def check():
            assert self.proc.poll() is None or predicate(), (
                f"exited {self.proc.returncode} before {what}: {self.err[-5:]}")
            return predicate()

        return wait_until(check, timeout, interval=0.02, message=f"{what}; stderr so far: {self.err[-5:]}")

    def finish(self, timeout: float = 20) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        for reader in self._readers:
            reader.join(5)
        assert_no_token(self.args, self.env, "\n".join(self.out), "\n".join(self.err))
        return code

    def interrupt(self, timeout: float = 20) -> int:
        """Ctrl-C: SIGINT to the process, as a terminal sends it; its exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.finish(timeout)

    @property
    def stderr(self) -> str:
        return "\n".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# -- on a terminal -----------------------------------------------------------------------------------------------
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # a CSI sequence, to read a screen's text without its colours


def on_terminal(args: list[str], env: dict, columns: int | None = 80, *, term: str = "xterm-256color",
                typed: bytes = b"", answers: tuple[tuple[bytes, bytes], ...] = (),
                stdout_piped: bool = False, color: bool = True) -> tuple[int, str] | tuple[int, str, bytes]:
    """Run the CLI with stdin, stdout and stderr on one pseudo-terminal; return its exit code and the screen text.

    ``typed``: keys typed before it starts (the terminal holds them until it reads); ``answers``: (prompt, keys)
    pairs, each typed once the screen shows the prompt. ``stdout_piped``: stdout is a pipe (stdin /dev/null,
    stderr the terminal); then (code, screen, stdout bytes). ``columns=None`` leaves COLUMNS and LINES unset;
    ``color=False`` keeps the environment's NO_COLOR."""
    main, secondary = pty.openpty()
    env = {**env, "TERM": term}
    if columns is not None:
        env.update(COLUMNS=str(columns), LINES="40")
    if color:
        env.pop("NO_COLOR", None)
    if stdout_piped:
        proc = subprocess.Popen([*CLI, *args], env=with_repo_path(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=secondary, close_fds=True)
    else:
        proc = subprocess.Popen([*CLI, *args], env=with_repo_path(env), stdin=secondary,
                                stdout=secondary, stderr=secondary, close_fds=True)
    os.close(secondary)
    if typed:
        os.write(main, typed)
    chunks = []
    pending = list(answers)
    while True:
        if pending and pending[0][0] in b"".join(chunks):
            os.write(main, pending.pop(0)[1])
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    stdout = proc.stdout.read() if stdout_piped else b""
    code = proc.wait(timeout=60)
    os.close(main)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert_no_token(args, env, screen, stdout)
    return (code, screen, stdout) if stdout_piped else (code, screen)


# -- in this process ---------------------------------------------------------------------------------------------
@dataclass
class Result:
    code: int
    out: str
    err: str


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """os.environ with every VALYENT_* variable replaced by those of ``env`` (and the other keys of ``env`` set)."""
    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if key.startswith("VALYENT_"):
                del os.environ[key]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


_COMMANDS: dict = {}


@contextmanager
def built_once() -> Iterator[None]:
    """typer.main.get_command memoized for this process: a subprocess builds the click command tree of the typer
    app once, and so does each in-process run without this, ~0.13 s each (hundreds of runs in a sweep). Runs share a
    click command only when the app and its registered groups are the same objects; a click command holds no state
    of its own between invocations (each has its Context)."""
    import typer.main

    original = typer.main.get_command

    def get_command(app):
        key = (id(app), tuple(id(info.typer_instance) for info in getattr(app, "registered_groups", ())))
        if key not in _COMMANDS:
            _COMMANDS[key] = (app, original(app))  # the app kept alive: its id stays its own
        return _COMMANDS[key][1]

    typer.main.get_command = get_command
    try:
        yield
    finally:
        typer.main.get_command = original


def _in_process(entry, argv: list[str], env: dict[str, str], stdin: bytes, cwd) -> tuple[int, bytes, str]:
    """Run ``entry(argv)`` with stdin, stdout and stderr of its own (none a terminal), ``env`` (see
    ``environment``) and ``cwd``; its exit code, the bytes it wrote to stdout, and its stderr; checked for the token."""
    out, err = io.BytesIO(), io.BytesIO()
    # surrogateescape: an argument that was not UTF-8 may be echoed back in a message, as a real terminal would
    stdout = io.TextIOWrapper(out, encoding="utf-8", errors="surrogateescape", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", errors="surrogateescape", write_through=True)
    saved = sys.stdin, sys.stdout, sys.stderr
    here = os.getcwd()
    sys.stdin, sys.stdout, sys.stderr = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"), stdout, stderr
    try:
        if cwd is not None:
            os.chdir(cwd)
        with environment(env), built_once():
            try:
                entry(list(argv))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            else:  # pragma: no cover - main() always exits
                code = 0
        stdout.flush()
        stderr.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        os.chdir(here)
    result = code, out.getvalue(), err.getvalue().decode("utf-8", "replace")
    assert_no_token(argv, env, result[1].decode("utf-8", "replace"), result[2])
    return result


def run_main_bytes(argv: list[str], env: dict[str, str], *, stdin: str = "") -> tuple[int, bytes, str]:
    """Like ``run_main``, with stdout as the bytes written (for binary output such as `fs cat`)."""
    from valyent_cli.main import main

    return _in_process(main, argv, env, stdin.encode(), None)


def run_main(argv: list[str], env: dict[str, str], *, stdin: str = "") -> Result:
    """Run `valyent ARGV` in this process; stdin is ``stdin`` and not a terminal, as in CI. ``env`` replaces every
    VALYENT_* variable for the run."""
    code, out, err = run_main_bytes(argv, env, stdin=stdin)
    return Result(code, out.decode("utf-8", "replace"), err)


def run_inproc(*args: str, env: dict[str, str], input: str | None = None, cwd: str | os.PathLike | None = None,
               timeout: float | None = None) -> subprocess.CompletedProcess:
    """``run_cli`` in this process: `valyent ARGS` through the program's entry point (``entry.main``, ``--version``
    included) in ``cwd``, with ``input`` as a stdin that is not a terminal; the same
    result (``returncode``, ``stdout``, ``stderr`` as str) and the same token check, without the ~0.25 s of CPU a
    subprocess costs. For tests of what a command says and does, not of the process (signals, terminals, exit of
    the interpreter, imports, completion requests, which end with ``os._exit``): those keep ``run_cli``.
    ``timeout`` is accepted for ``run_cli``'s signature; pytest-timeout bounds a run in this process."""
    from valyent_cli.entry import main

    words = [os.fsdecode(a) for a in args]
    code, out, err = _in_process(main, words, env, (input or "").encode(), cwd)
    return subprocess.CompletedProcess(["valyent", *words], code, out.decode("utf-8", "replace"), err)
