"""Issue 27, item 9: the sandbox's listeners against connections that only take.

Thousands of idle connections once took the API down (`/healthz` failed, `exec` timed out) and wrote 28 MB of
EMFILE tracebacks to server.log. Now a connection that does not send a whole request head in time is closed (a drip
does not extend the time), the API and the gateways cap their connections by closing the longest idle one, and
running out of descriptors is one line in server.log.
"""

from __future__ import annotations

import select
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from support.sandbox import Sandbox
from support.util import wait_until


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` (readable with nothing to read, or reset). Never blocks."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(65536) == b""
    except ConnectionError:
        return True


def started(tmp_path, name: str, **env: str) -> Sandbox:
    return Sandbox(tmp_path / name, env=env).start()


@pytest.fixture()
def quick(tmp_path):
    sb = started(tmp_path, "quick", VALYENT_LOCAL_HEADER_TIMEOUT="1")
    yield sb
    sb.finish()


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"], ids=["nothing", "half a head"])
def test_a_connection_without_a_whole_head_is_closed(quick, sent):
    with socket.create_connection(("127.0.0.1", quick.port)) as sock:
        sock.sendall(sent)
        wait_until(lambda: closed_by_server(sock), timeout=20, message="the server to close the idle connection")


def test_a_gateway_connection_without_a_whole_head_is_closed(quick):
    with quick.client() as api:
        assert api.post("/fleets", json={"name": "gw"}).status_code in (200, 201)
        gw = api.post("/fleets/gw/gateways", json={"name": "web", "target_port": 8080}).json()
    host, port = gw["url"].removeprefix("http://").rstrip("/").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        wait_until(lambda: closed_by_server(sock), timeout=20, message="the gateway to close the idle connection")


def test_a_dripped_head_is_closed_too(quick):
    """A byte of an endless header every 0.2 s (the drip's pace, not a wait) keeps uvicorn's keep-alive timer
    from ever firing; the head timeout is counted from the connection, not from the last byte."""
    with socket.create_connection(("127.0.0.1", quick.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Drip: ")
        deadline = time.monotonic() + 20
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                sock.sendall(b"a")
            except OSError:
                closed = True
                break
            closed = closed_by_server(sock)
            time.sleep(0.2)
        assert closed, "a dripping client kept its connection for 20 s with a 1 s head timeout"


def test_a_flood_of_idle_connections_keeps_neither_healthz_nor_requests_from_being_served(tmp_path):
    sb = started(tmp_path, "capped", VALYENT_LOCAL_HEADER_TIMEOUT="600", VALYENT_LOCAL_MAX_CONNECTIONS="40")
    socks = []
    try:
        for _ in range(60):
            socks.append(socket.create_connection(("127.0.0.1", sb.port)))
        # the server took them all in; the oldest idle ones make room for what comes after
        assert httpx.get(sb.base + "/healthz", timeout=10).status_code == 200
        wait_until(lambda: sum(closed_by_server(s) for s in socks) >= 20, timeout=20,
                   message="the server to close idle connections past its cap of 40")
        with sb.client(timeout=10) as api:
            assert api.get("/fleets").status_code == 200
    finally:
        for s in socks:
            s.close()
        sb.finish()
    assert "Traceback" not in sb.log_text()


def test_running_out_of_descriptors_is_one_line_in_the_log(tmp_path):
    sb = started(tmp_path, "emfile")
    socks = []
    try:
        fds = len(list(Path(f"/proc/{sb.proc.pid}/fd").iterdir()))
        limit = fds + 4
        subprocess.run(["prlimit", f"--pid={sb.proc.pid}", f"--nofile={limit}:{limit}"], check=True)
        for _ in range(12):
            socks.append(socket.create_connection(("127.0.0.1", sb.port)))
        wait_until(lambda: "cannot accept connections" in sb.log_text(), timeout=20,
                   message="the server to say it cannot accept connections")
        for s in socks:
            s.close()
        socks = []
        wait_until(lambda: _healthz(sb), timeout=20, message="the server to answer again")
        log = sb.log_text()
        assert "Traceback" not in log and "out of system resource" not in log, log
        assert log.count("cannot accept connections") == 1, log
    finally:
        for s in socks:
            s.close()
        sb.finish()


def _healthz(sb: Sandbox) -> bool:
    try:
        return httpx.get(sb.base + "/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
