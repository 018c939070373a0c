"""Issue 7, streams, through the CLI: `valyent logs -f` against live streams that are cut mid-line, closed
cleanly, reset, refused with a 503 and stalled prints every line exactly once (sequence numbers checked), and
gives up with a clear error after repeated failures, backing off between attempts; a download cut mid-file
leaves no partial file and keeps the previous one.

test_logs.py covers a cut and a stall against the sandbox's CLI; test_api_logs.py the follower's rules."""

from __future__ import annotations

import json
import re

import pytest
from support.cli import Proc
from support.faultserver import Reply, Stream, cli_env_for, serve_file
from support.cli import run_main

MACHINE = "01jstreamsmachine00000000"
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z seq (\d+)$")


@pytest.fixture()
def env(tmp_path, fault_server) -> dict:
    return cli_env_for(fault_server, tmp_path / "config", VALYENT_STREAM_IDLE_TIMEOUT="0.5")


def line(i: int) -> bytes:
    return json.dumps({"timestamp": 1_700_000_000_000 + i, "instance_id": "i-1", "source": "stdout",
                       "message": f"seq {i}"}).encode() + b"\n"


def upto(n: int) -> list[bytes]:
    """The history replayed from the start, as Ravel does at every connection: lines 1..n."""
    return [line(i) for i in range(1, n + 1)]


def serve(server, connections) -> list:
    """Answer the n-th live-log connection with connections[n] (the last repeats); the machine is running."""
    opened = []

    def handler(request):
        if request.path.endswith("/logs"):
            assert request.param("follow") == "true"
            opened.append(request)
            return connections[min(len(opened), len(connections)) - 1]
        if request.path.endswith(f"/machines/{MACHINE}"):
            return Reply(json={"id": MACHINE, "fleet": "fleet_01", "state": "running"})
        return None

    server.handler = handler
    return opened


def seqs(proc: Proc) -> list[int]:
    found = [LINE.match(x) for x in proc.out]
    assert all(found), proc.out
    return [int(m.group(1)) for m in found]


def test_every_line_once_through_cuts_closes_resets_503s_and_stalls(env, fault_server):
    opened = serve(fault_server, [
        Stream([*upto(3), line(4)[:20]], end="cut"),  # cut in the middle of line 4
        Stream([b"".join(upto(5))], end="close"),  # the replay, two new lines, then a clean end of stream
        Stream([*upto(6), line(7)[:10]], end="close"),  # closed cleanly, but mid-line
        Reply(503),  # the proxy in front fails once (retried by the client itself)
        Stream(upto(8), end="reset"),
        Stream(upto(10), end="stall"),  # goes silent: reopened after VALYENT_STREAM_IDLE_TIMEOUT
        Stream(upto(12), end="stall"),
    ])
    proc = Proc(["logs", "-f", MACHINE], env)
    try:
        proc.wait_for(lambda: any(x.endswith(" seq 12") for x in proc.out), timeout=30, what="line 12")
        code = proc.interrupt()
    finally:
        proc.kill()
    assert code == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert seqs(proc) == list(range(1, 13))  # each line exactly once, in order, none lost
    assert len(opened) == 7
    notes = [x for x in proc.err if "reconnecting" in x]
    assert len(notes) == 5, proc.stderr  # one note per reconnection (the 503 was retried inside one)
    assert any("stalled" in x or "Timeout" in x for x in notes), notes


def test_gives_up_after_repeated_failures_with_a_clear_error(env, fault_server):
    # Every connection replays lines 1..3 and breaks: nothing new ever comes.
    opened = serve(fault_server, [Stream(upto(3), end="cut")])
    proc = Proc(["logs", "-f", MACHINE], env)
    try:
        code = proc.finish(timeout=40)
    finally:
        proc.kill()
    assert code == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert seqs(proc) == [1, 2, 3]
    errors = [x for x in proc.err if x.startswith("Error: ")]
    assert len(errors) == 1 and "failed" in errors[0] and "giving up" in errors[0], proc.stderr
    # The first connection, then 6 that brought nothing new (5 failures allowed).
    assert len(opened) == 7
    gaps = [b.received_at - a.received_at for a, b in zip(opened, opened[1:])]
    # Reconnections back off: 0.25, 0.25, 0.5, 1, 2, 4 s, each times a jitter in [0.75, 1].
    assert gaps[-1] >= 2.9 and gaps[-2] >= 1.4, gaps
    assert gaps[-1] > gaps[-2] > gaps[-3], gaps


@pytest.mark.parametrize(
    "answer",
    [
        Reply(200, body=b"y" * 1_000_000, headers={"Content-Type": "application/octet-stream"}, truncate=300_000,
              end="reset"),
        Stream([b"y" * 65536] * 4, content_type="application/octet-stream", end="cut"),
    ],
    ids=["reset-after-300KB", "chunked-cut"],
)
def test_a_download_cut_mid_file_keeps_the_old_file_and_leaves_nothing_else(env, fault_server, tmp_path, answer):
    serve_file(fault_server, MACHINE, answer, fleet="fleet_01")
    work = tmp_path / "work"
    work.mkdir()
    target = work / "data.bin"
    target.write_bytes(b"yesterday's data")
    result = run_main(["fs", "get", MACHINE, "/data.bin", str(target), "--force"], env)
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    assert result.err.startswith("Error: ") and fault_server.url in result.err
    assert [p.name for p in work.iterdir()] == ["data.bin"]
    assert target.read_bytes() == b"yesterday's data"
