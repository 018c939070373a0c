"""Issue 27, item 11: the CLI's memory against a hostile server (a small real loopback server that misbehaves).

A 1 MB gzip answer that expands to 1 GiB, and a log line that never ends (`logs`, `logs -f`, `builds logs -f`),
once took the CLI to several GB. Decoded answers and lines are capped: past the cap the command stops with a clear
error (exit 1), its peak memory a fraction of what the server sent. The peak is the child's own `ru_maxrss`
(`os.wait4`), not a time.
"""

from __future__ import annotations

import functools
import os
import subprocess
import zlib

import pytest

from support.cli import CLI, assert_no_token, with_repo_path
from support.faultserver import Reply, Stream, cli_env_for

MACHINE = "01jhostilemachine00000000"
GIB = 1024 * 1024 * 1024
MIB = 1024 * 1024


@functools.lru_cache(maxsize=1)
def gzip_bomb() -> bytes:
    """About 1 MB of gzip that expands to 1 GiB of spaces."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * MIB
    return b"".join([c.compress(block) for _ in range(1024)] + [c.flush()])


def endless_line(total: int = 512 * MIB):
    """A line of `total` bytes without a newline, sent a MiB at a time."""
    piece = b"x" * MIB
    for _ in range(total // MIB):
        yield piece


def run_measured(tmp_path, *args: str, env: dict) -> tuple[int, str, str, int]:
    """(exit code, stdout, stderr, peak RSS in bytes) of a CLI run."""
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([*CLI, *args], env=with_repo_path(env), stdout=o, stderr=e,
                                stdin=subprocess.DEVNULL)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            proc.returncode = 0  # reaped here: Popen must not wait for it again
    stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
    assert_no_token(args, env, stdout, stderr)
    return os.waitstatus_to_exitcode(status), stdout, stderr, usage.ru_maxrss * 1024


@pytest.fixture()
def env(tmp_path, fault_server) -> dict:
    return cli_env_for(fault_server, tmp_path / "config")


def serve(server, answer) -> None:
    """Answer a logs or build-log request with `answer`; the machine is running, the build is running."""

    def handler(request):
        if request.path.endswith("/logs"):
            return answer
        if request.path.endswith(f"/machines/{MACHINE}"):
            return Reply(json={"id": MACHINE, "fleet": "fleet_01", "state": "running"})
        if "/builds/" in request.path:
            return Reply(json={"id": "build_1", "status": "running", "full_image": "x:latest"})
        return None

    server.handler = handler


def test_a_gzip_bomb_answer_is_refused_without_filling_the_memory(env, fault_server, tmp_path):
    bomb = gzip_bomb()
    fault_server.default = Reply(200, body=bomb, headers={"Content-Type": "application/json",
                                                         "Content-Encoding": "gzip"})
    code, stdout, stderr, peak = run_measured(tmp_path, "fleets", "list", "--json", env=env)
    assert code == 1, (code, stderr)
    assert stderr.startswith("Error: ") and "larger than 256 MiB once decoded" in stderr, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert peak < 700 * MIB, f"peak memory {peak // MIB} MiB for a {len(bomb) // 1024} KiB answer"


@pytest.mark.parametrize("argv", [("logs", MACHINE), ("logs", "-f", MACHINE), ("builds", "logs", "-f", "build_1")],
                         ids=["logs", "logs-f", "builds-logs-f"])
def test_a_log_line_without_end_is_refused_without_filling_the_memory(env, fault_server, tmp_path, argv):
    content_type = "text/plain" if argv[0] == "builds" else "application/x-ndjson"
    serve(fault_server, Stream(endless_line(), content_type=content_type, end="close"))
    code, stdout, stderr, peak = run_measured(tmp_path, *argv, env=env)
    assert code == 1, (code, stderr[-2000:])
    assert "log line longer than 8 MiB" in stderr, stderr[-2000:]
    assert "Traceback" not in stderr and len(stdout) < MIB
    assert peak < 400 * MIB, f"peak memory {peak // MIB} MiB"  # below the 512 MiB sent: the line is never held whole
