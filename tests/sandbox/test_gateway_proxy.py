"""The gateway proxy under stress and abuse (issues 26, 27 items 15 and 19, and the drain issue 25 needs), on the
process driver: kept-alive connections to machines, requests it must refuse (RFC 9112), a silent machine (504), a
gateway that must reach only its fleet's machines, and a machine whose gateway is disabled or that is stopped while
a request to it is under way (it finishes; nothing new is sent to it). The podman driver's side (no engine call per
request) is in test_local_containers.py."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import httpx
import pytest

from support.cli import run_inproc
from support.env import free_port
from support.sandbox import Sandbox
from support.util import machine_payload, name, wait_until

BACKEND = r"""
import http.server, signal, sys, threading
release, answered = threading.Event(), threading.Event()
count = {"waiting": 0, "seen": 0}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/peer":
            return self.answer(str(self.client_address[1]).encode())
        if self.path == "/hold":
            count["waiting"] += 1
            release.wait(120)
            self.answer(b"held-done")
            return answered.set()
        if self.path == "/release":
            release.set()
            return self.answer(b"ok")
        if self.path in ("/waiting", "/seen"):
            return self.answer(str(count[self.path[1:]]).encode())
        count["seen"] += 1
        self.answer(b"hello")
    def do_POST(self):
        count["seen"] += 1
        n = int(self.headers.get("Content-Length") or 0)
        self.answer(b"got %d" % len(self.rfile.read(n)))
    def log_message(self, *a):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
def on_term(*_):  # a stop: finish the request under way, then go
    threading.Thread(target=lambda: (answered.wait(120), server.shutdown())).start()
signal.signal(signal.SIGTERM, on_term)
print("serving", flush=True)
server.serve_forever()
"""

SILENT = r"""
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
conns = []
while True:
    conns.append(s.accept()[0])  # read nothing, answer nothing
"""


class Fleet:
    def __init__(self, sandbox: Sandbox, env: dict):
        self.sandbox = sandbox
        self.name = name("gwp")
        self.api = sandbox.client()
        assert self.api.post("/fleets", json={"name": self.name}).status_code in (200, 201)
        self.env = {**env, "VALYENT_FLEET": self.name}

    def gateway(self, port: int, gw_name: str = "web") -> str:
        r = self.api.post(f"/fleets/{self.name}/gateways", json={"name": gw_name, "target_port": port})
        assert r.status_code in (200, 201), r.text
        return r.json()["url"]

    def machine(self, script: str, port: int, gateway: bool = True) -> str:
        payload = machine_payload(["python3", "-c", script, str(port)], image="python:3")
        payload["enable_machine_gateway"] = gateway
        r = self.api.post(f"/fleets/{self.name}/machines", json=payload)
        assert r.status_code in (200, 201), r.text
        mid = r.json()["id"]
        wait_until(lambda: _listening(port), 20, message=f"machine {mid} listening on {port}")
        return mid

    def close(self):
        for m in self.api.get(f"/fleets/{self.name}/machines").json():
            self.api.delete(f"/fleets/{self.name}/machines/{m['id']}", params={"force": "true"})
        self.api.delete(f"/fleets/{self.name}")
        self.api.close()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture()
def fleet(sandbox, cli_env):
    f = Fleet(sandbox, cli_env)
    yield f
    f.close()


@pytest.fixture()
def served(fleet):
    """A fleet whose gateway proxies to one machine running BACKEND: (fleet, gateway url, machine id, port)."""
    port = free_port()
    url = fleet.gateway(port)
    mid = fleet.machine(BACKEND, port)
    return fleet, url, mid, port


def raw(url: str, data: bytes, timeout: float = 20) -> bytes:
    """Send bytes to the gateway as they are; what it answers until it closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def direct(port: int, path: str) -> str:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).text


# -- kept-alive connections to machines ------------------------------------------------------------------------------
def test_requests_through_the_gateway_reuse_one_connection_to_the_machine(served):
    fleet, url, mid, port = served
    peers = set()
    for _ in range(5):  # a new client connection each time: the gateway's side to the machine is kept alive
        with httpx.Client(timeout=10) as http:
            r = http.get(url + "/peer")
            assert r.status_code == 200, r.text
            peers.add(r.text)
    assert len(peers) == 1, f"the machine saw {len(peers)} connections for 5 requests: {peers}"
    with httpx.Client(timeout=10) as http:  # and a body still goes through on it
        assert http.post(url + "/up", content=b"x" * 300_000).text == "got 300000"
        assert http.get(url + "/peer").text in peers


# -- requests the gateway refuses (issue 27, item 15) -----------------------------------------------------------------
def test_a_request_with_both_content_length_and_transfer_encoding_is_refused(served):
    fleet, url, mid, port = served
    seen = direct(port, "/seen")
    answer = raw(url, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"Content-Length and Transfer-Encoding" in answer
    assert direct(port, "/seen") == seen  # nothing reached the machine


@pytest.mark.parametrize("request_bytes, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
])
def test_a_malformed_request_gets_an_answer_not_a_silent_close(served, request_bytes, status):
    fleet, url, mid, port = served
    answer = raw(url, request_bytes)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert b"malformed request" in answer


def test_a_silent_machine_gets_a_504_after_the_gateway_timeout(tmp_path):
    from support.env import cli_environ

    sb = Sandbox(tmp_path / "data", env={"VALYENT_LOCAL_GATEWAY_TIMEOUT": "1"}).start()
    try:
        fleet = Fleet(sb, cli_environ(tmp_path / "config", sandbox=sb))
        port = free_port()
        url = fleet.gateway(port)
        fleet.machine(SILENT, port)
        r = httpx.get(url + "/", timeout=30)  # before: no answer at all (the client's own timeout)
        assert r.status_code == 504, r.text
        assert "did not answer within 1 s" in r.text
        fleet.close()
    finally:
        sb.finish()


# -- a gateway reaches only its fleet's machines (issue 27, item 19) ------------------------------------------------
class _Secret(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"host-secret"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_a_gateway_does_not_reach_a_loopback_port_its_machines_do_not_listen_on(fleet, sandbox):
    host = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Secret)  # not a machine: a host's service
    threading.Thread(target=host.serve_forever, daemon=True).start()
    try:
        port = host.server_address[1]
        url = fleet.gateway(port)
        r = fleet.api.post(f"/fleets/{fleet.name}/machines", json={
            **machine_payload(["sleep", "300"], image="python:3"), "enable_machine_gateway": True})
        mid = r.json()["id"]
        wait_until(lambda: fleet.api.get(f"/fleets/{fleet.name}/machines/{mid}").json()["state"] == "running", 20)
        r = httpx.get(url + "/", timeout=10)
        assert r.status_code == 502 and "host-secret" not in r.text, r.text
        # nor the sandbox's own API
        api_port = int(sandbox.base.rsplit(":", 1)[1])
        assert httpx.get(fleet.gateway(api_port, "api") + "/healthz", timeout=10).status_code == 502
    finally:
        host.shutdown()
        host.server_close()


# -- drain (issue 25): a request under way finishes, nothing new is sent --------------------------------------------
def _held_request(url: str) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def go():
        try:
            r = httpx.get(url + "/hold", timeout=120)
            result["status"], result["text"] = r.status_code, r.text
        except httpx.HTTPError as exc:
            result["error"] = repr(exc)

    thread = threading.Thread(target=go)
    thread.start()
    return thread, result


def test_disabling_a_machines_gateway_drains_it(served):
    fleet, url, mid, port = served
    assert httpx.get(url + "/peer", timeout=10).status_code == 200  # a kept connection exists
    thread, result = _held_request(url)
    wait_until(lambda: direct(port, "/waiting") == "1", 20, message="the held request reached the machine")
    r = run_inproc("machines", "disable-gateway", mid, env=fleet.env)
    assert r.returncode == 0, r.stderr
    seen = direct(port, "/seen")
    after = httpx.get(url + "/", timeout=10)  # nothing new goes to it, on a kept connection or a new one
    assert after.status_code == 502, after.text
    assert direct(port, "/seen") == seen
    direct(port, "/release")
    thread.join(60)
    assert result == {"status": 200, "text": "held-done"}


def test_stopping_a_machine_lets_its_request_under_way_finish(served):
    fleet, url, mid, port = served
    thread, result = _held_request(url)
    wait_until(lambda: direct(port, "/waiting") == "1", 20, message="the held request reached the machine")
    r = fleet.api.post(f"/fleets/{fleet.name}/machines/{mid}/stop", json={"timeout": 30})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "stopping"
    seen = direct(port, "/seen")
    after = httpx.get(url + "/", timeout=10)
    assert after.status_code == 502, after.text
    assert direct(port, "/seen") == seen
    direct(port, "/release")
    thread.join(60)
    assert result == {"status": 200, "text": "held-done"}
    wait_until(lambda: fleet.api.get(f"/fleets/{fleet.name}/machines/{mid}").json()["state"] == "stopped", 30)


# -- the machine list of a small fleet, answered again while nothing changed (issue 26) ------------------------------
def test_a_small_fleets_list_follows_every_change(fleet):
    base = f"/fleets/{fleet.name}/machines"
    assert fleet.api.get(base).json() == []
    r = fleet.api.post(base, json={**machine_payload(["sleep", "300"]), "skip_start": True})
    mid = r.json()["id"]
    assert [m["id"] for m in fleet.api.get(base).json()] == [mid]
    assert fleet.api.get(base).json() == fleet.api.get(base).json()  # twice the same, nothing changed
    fleet.api.patch(f"{base}/{mid}/metadata", json={"metadata": {"labels": {"tier": "web"}}})
    assert fleet.api.get(base).json()[0]["metadata"]["labels"] == {"tier": "web"}
    fleet.api.post(f"{base}/{mid}/start")
    wait_until(lambda: fleet.api.get(base).json()[0]["state"] == "running", 20)
    fleet.api.post(f"{base}/{mid}/gateway/enable")
    assert fleet.api.get(base).json()[0]["gateway_enabled"] is True
    fleet.api.delete(f"{base}/{mid}", params={"force": "true"})
    assert fleet.api.get(base).json() == []


def test_a_small_fleets_list_is_its_namespaces_and_its_fleets_own(fleet):
    """The answer kept for one fleet's list is never given for a fleet of the same name in another namespace, nor for
    a fleet that replaced it under its name."""
    api, ns, fname = fleet.api, name("ns"), name("fl")
    assert api.post("/namespaces", json={"name": ns}).status_code in (200, 201)
    try:
        assert api.post("/fleets", json={"name": fname}).status_code in (200, 201)
        mid = api.post(f"/fleets/{fname}/machines", json={**machine_payload(["sleep", "300"]),
                                                          "skip_start": True}).json()["id"]
        assert [m["id"] for m in api.get(f"/fleets/{fname}/machines").json()] == [mid]
        # the same name in the other namespace: not found there, then its own (empty) list
        assert api.get(f"/fleets/{fname}/machines", params={"namespace": ns}).status_code == 404
        assert api.post("/fleets", params={"namespace": ns}, json={"name": fname}).status_code in (200, 201)
        assert api.get(f"/fleets/{fname}/machines", params={"namespace": ns}).json() == []
        assert [m["id"] for m in api.get(f"/fleets/{fname}/machines").json()] == [mid]
        # a fleet deleted and made again under its name has none of the old one's machines
        api.delete(f"/fleets/{fname}/machines/{mid}", params={"force": "true"})
        assert api.delete(f"/fleets/{fname}").status_code in (200, 204)
        assert api.get(f"/fleets/{fname}/machines").status_code == 404
        assert api.post("/fleets", json={"name": fname}).status_code in (200, 201)
        assert api.get(f"/fleets/{fname}/machines").json() == []
        assert api.get(f"/fleets/{fname}/machines", params={"destroyed": "true"}).json() == []
    finally:
        api.delete(f"/fleets/{fname}")
        api.delete(f"/fleets/{fname}", params={"namespace": ns})
        api.delete(f"/namespaces/{ns}")
