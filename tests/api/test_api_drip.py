"""Issue 17, item 15: a server that drips its answer (a byte at a time, never silent for a whole read timeout).

Non-streaming calls have one overall deadline for all their attempts, derived from the timeout (read timeout +
timeout), so a drip ends as a timeout (exit 5) within ~2x timeout; `logs -f` treats a stream that brings bytes but no complete line for the idle
timeout as stalled, and reconnects.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from support.faultserver import FaultServer, Reply, Stream, cli_env_for, client_for, ndjson
from support.cli import run_cli

from valyent_cli.api import errors

MACHINE = {"id": "m1", "fleet": "web", "state": "running", "config": {"image": "nginx"}}


def slow_profile(server, tmp_path) -> dict:
    env = cli_env_for(server, tmp_path)
    made = run_cli("profiles", "create", "slow", "--timeout", "1", "--use", env=env)
    assert made.returncode == 0, made.stderr
    return env


def test_a_dripped_body_is_timed_out_by_the_overall_deadline(fault_server, tmp_path):
    fault_server.handler = lambda r: Stream([b"["] + [b" "] * 2000, chunk_delay=0.1, content_type="application/json")
    env = slow_profile(fault_server, tmp_path)
    started = time.monotonic()
    result = run_cli("machines", "list", env=env, timeout=60)
    assert result.returncode == 5, result
    assert "within 2 s" in result.stderr and "Traceback" not in result.stderr
    # the call's deadline (2 x timeout) covers every attempt: the first one used it up, so no retry (was 3 GETs,
    # ~3 x 2 s and the backoff in between)
    assert fault_server.count("GET") == 1
    assert time.monotonic() - started < 30


def test_a_dripped_create_is_not_sent_twice_and_may_have_taken_effect(fault_server, tmp_path):
    fault_server.handler = lambda r: Stream([b"{"] + [b" "] * 2000, chunk_delay=0.1, content_type="application/json")
    env = slow_profile(fault_server, tmp_path)
    result = run_cli("fleets", "create", "web", env=env, timeout=60)
    assert result.returncode == 5, result
    assert fault_server.count("POST") == 1
    assert "may still have taken effect" in result.stderr


class HeaderDripper:
    """A server that sends its status line and headers one byte every 0.1 s, forever."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.accepted = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        conn.recv(65536)
        head = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 300  # 30 s of drip, then closed
        try:
            for i in range(len(head)):
                if self.stop.wait(0.1):
                    break
                conn.sendall(head[i : i + 1])
        except OSError:
            pass
        conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_dripped_headers_are_timed_out_too():
    server = HeaderDripper()
    client = client_for(server.url, timeout=0.5, max_retries=0)
    try:
        started = time.monotonic()
        with pytest.raises(errors.TimeoutError, match="within 1 s"):
            client.fleets.list()
        assert time.monotonic() - started < 5
    finally:
        client.close()
        server.close()


def test_a_normal_answer_after_a_slow_start_is_within_the_deadline(fault_server):
    # Quiet for less than the read timeout, then the answer: no deadline trips; the client is reusable after.
    fault_server.queue(Reply(200, json=[{"id": "f1"}], delay=0.3), Reply(200, json=[{"id": "f2"}]))
    client = client_for(fault_server, timeout=1.0)
    try:
        assert [f["id"] for f in client.fleets.list()] == ["f1"]
        assert [f["id"] for f in client.fleets.list()] == ["f2"]
    finally:
        client.close()


def test_logs_follow_reconnects_from_a_dripping_stream(fault_server, tmp_path):
    served = {"logs": 0}
    line = {"timestamp": 1_700_000_000, "message": "hello after the drip", "source": "stdout"}

    def handler(request):
        if request.path.endswith("/logs"):
            served["logs"] += 1
            if served["logs"] == 1:  # bytes every 0.1 s, never a whole line
                return Stream([b'{"message": '] + [b" "] * 3000, chunk_delay=0.1, end="stall")
            return Stream([ndjson(line)], end="close")
        if request.path.endswith("/machines/m1"):
            return Reply(json={**MACHINE, "state": "destroyed" if served["logs"] >= 2 else "running"})
        return None

    fault_server.handler = handler
    env = cli_env_for(fault_server, tmp_path, VALYENT_STREAM_IDLE_TIMEOUT="1")
    result = run_cli("logs", "-f", "m1", env=env, timeout=40)
    assert result.returncode == 0, result.stderr
    assert "hello after the drip" in result.stdout
    assert "stalled" in result.stderr


def test_retries_share_the_calls_budget(fault_server):
    """A server that fails slowly (503 after 0.8 s): with timeout 1 the call's budget (2 s) holds two attempts and
    the backoff between them, not the three of max_retries (a third would start past the deadline)."""
    fault_server.handler = lambda r: Reply(503, delay=0.8)
    with client_for(fault_server, timeout=1, max_retries=2, backoff_base=0.3, backoff_max=0.3) as client:
        with pytest.raises((errors.ServerError, errors.TimeoutError)):
            client.fleets.list()
    assert fault_server.count("GET") == 2
