"""Gateways that answer on the sandbox: a loopback URL per gateway, proxied to the fleet's running machines that
have their gateway enabled (round robin), a clear 502 when none is up. Process driver here; the container drivers'
gateway test is in test_local_containers.py."""

from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest

from support.env import free_port
from support.cli import run_inproc


@pytest.fixture()
def fleet(cli_env, sandbox):
    name = f"gw-{secrets.token_hex(4)}"
    with sandbox.client() as api:
        assert api.post("/fleets", json={"name": name}).status_code in (200, 201)
        yield name, {**cli_env, "VALYENT_FLEET": name}
        for m in api.get(f"/fleets/{name}/machines").json():
            api.delete(f"/fleets/{name}/machines/{m['id']}", params={"force": "true"})
        api.delete(f"/fleets/{name}")


def web_machine(env, port: int, text: str, tmp_path) -> str:
    """A machine serving `text` at / on `port` with python's http.server, from a directory of its own root."""
    script = (f"mkdir -p site && printf {text} > site/index.html && "
              f"exec python3 -m http.server {port} --bind 127.0.0.1 --directory site")
    r = run_inproc("machines", "create", "-q", "--image", "python:3", "--enable-gateway", "--", "sh", "-c", script,
                env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def get(url: str, deadline: float = 15) -> httpx.Response:
    end = time.monotonic() + deadline
    while True:
        r = httpx.get(url, timeout=5)
        if r.status_code != 502 or time.monotonic() > end:
            return r
        time.sleep(0.1)  # the machine's server is still starting


def test_gateway_url_answers_with_the_machines_page_round_robin(fleet, tmp_path):
    name, env = fleet
    port = free_port()
    created = run_inproc("gateways", "create", "--name", "web", "--port", str(port), "--json", env=env)
    assert created.returncode == 0, created.stderr
    gw = json.loads(created.stdout)
    url = gw["url"]
    assert url.startswith("http://127.0.0.1:")
    # nothing up yet: a clear 502
    r = httpx.get(url, timeout=5)
    assert r.status_code == 502 and "no running machine" in r.text
    a = web_machine(env, port, "machine-a", tmp_path)
    assert get(url).text == "machine-a"
    # show and list print the URL
    show = run_inproc("gateways", "show", "web", env=env)
    assert url in show.stdout
    listing = run_inproc("gateways", "list", env=env)
    assert url in listing.stdout and "URL" in listing.stdout
    # a machine without its gateway enabled gets nothing
    r = run_inproc("machines", "disable-gateway", a, env=env)
    assert r.returncode == 0, r.stderr
    assert httpx.get(url, timeout=5).status_code == 502
    r = run_inproc("machines", "enable-gateway", a, env=env)
    assert get(url).text == "machine-a"
    # stopped: 502 again
    assert run_inproc("machines", "stop", a, env=env).returncode == 0
    assert httpx.get(url, timeout=5).status_code == 502
    # deleting the gateway closes its port
    assert run_inproc("gateways", "delete", "--yes", "web", env=env).returncode == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=2)


SHARED_PORT_SERVER = """
import http.server, socket, sys
class Server(http.server.HTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = sys.argv[2].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
Server(("127.0.0.1", int(sys.argv[1])), Page).serve_forever()
"""


def test_two_process_machines_behind_one_gateway_both_answer(fleet):
    """Round robin on the process driver: its machines share the host's network, so two machines serving one
    target port share 127.0.0.1:port (SO_REUSEPORT); each request through the gateway (one kept-alive client
    connection) opens its own upstream connection, and both machines answer. Stopped, one leaves the other."""
    name, env = fleet
    port = free_port()
    gw = json.loads(run_inproc("gateways", "create", "--name", "web", "--port", str(port), "--json", env=env).stdout)
    ids = {}
    for text in ("machine-a", "machine-b"):
        r = run_inproc("machines", "create", "-q", "--image", "python:3", "--enable-gateway", "--", "python3", "-c",
                       SHARED_PORT_SERVER, str(port), text, env=env)
        assert r.returncode == 0, r.stderr
        ids[text] = r.stdout.strip()
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=5) as http:
        while seen != {"machine-a", "machine-b"}:
            assert time.monotonic() < deadline, f"only {seen} answered"
            r = http.get(gw["url"])
            if r.status_code == 200:
                seen.add(r.text)
            else:
                time.sleep(0.05)  # a machine's server is still starting (polling, with the deadline above)
    assert run_inproc("machines", "stop", ids["machine-a"], env=env).returncode == 0
    wait = run_inproc("machines", "wait", ids["machine-a"], "--state", "stopped", "--timeout", "20s", env=env)
    assert wait.returncode == 0, wait.stderr
    assert {httpx.get(gw["url"], timeout=5).text for _ in range(6)} == {"machine-b"}


def test_process_driver_says_once_that_the_image_is_not_run(cli_env, tmp_path):
    """Once a command, create and run alike; -q silences it (issue 24, item 21)."""
    env = {**cli_env, "VALYENT_FLEET": "default"}
    r = run_inproc("machines", "create", "--json", "--image", "nginx", "--", "sleep", "30", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("process driver") == 1 and "'nginx' is not run" in r.stderr
    assert "process driver" not in r.stdout
    quiet = run_inproc("machines", "create", "-q", "--image", "nginx", "--", "sleep", "30", env=env)
    assert quiet.returncode == 0 and "process driver" not in quiet.stderr, quiet.stderr
    ran = run_inproc("machines", "run", "--rm", "--image", "alpine", "--", "echo", "hi", env=env)
    assert ran.returncode == 0 and ran.stdout == "hi\n", ran.stderr
    assert ran.stderr.count("process driver") == 1 and "'alpine' is not run" in ran.stderr
    ran = run_inproc("machines", "run", "-q", "--rm", "--image", "alpine", "--", "echo", "hi", env=env)
    assert ran.returncode == 0 and ran.stdout == "hi\n" and "process driver" not in ran.stderr, ran.stderr
    for machine in (json.loads(r.stdout)["id"], quiet.stdout.strip()):
        run_inproc("machines", "delete", "--yes", "--force", machine, env=env)


def test_a_gateway_keeps_its_url_across_a_restart(fresh_sandbox, tmp_path):
    from support.env import cli_environ

    env = cli_environ(tmp_path / "config", sandbox=fresh_sandbox, fleet="default")
    gw = json.loads(run_inproc("gateways", "create", "--name", "web", "--port", "8080", "--json", env=env).stdout)
    fresh_sandbox.restart()
    env = cli_environ(tmp_path / "config", sandbox=fresh_sandbox, fleet="default")
    again = json.loads(run_inproc("gateways", "show", "web", "--json", env=env).stdout)
    assert again["url"] == gw["url"]
    assert httpx.get(gw["url"], timeout=5).status_code == 502  # listening again, nothing behind it


ECHO_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer(("%s %s %s" % (self.path, self.headers["X-Forwarded-For"], self.headers["Host"])).encode())
    def do_POST(self):
        n = int(self.headers["Content-Length"])
        self.answer(b"got %d bytes ending %s" % (n, self.rfile.read(n)[-4:]))
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_the_proxy_speaks_http_keep_alive_bodies_and_forwarded_headers(fleet, tmp_path):
    name, env = fleet
    port = free_port()
    gw = json.loads(run_inproc("gateways", "create", "--name", "echo", "--port", str(port), "--json", env=env).stdout)
    r = run_inproc("machines", "create", "-q", "--image", "python:3", "--enable-gateway", "--", "python3", "-c",
                ECHO_SERVER, str(port), env=env)
    assert r.returncode == 0, r.stderr
    with httpx.Client(base_url=gw["url"], timeout=10) as http:  # one kept-alive connection for every request
        deadline = time.monotonic() + 15
        while (resp := http.get("/first?x=1")).status_code == 502 and time.monotonic() < deadline:
            time.sleep(0.1)
        host = gw["url"].removeprefix("http://")
        assert resp.text == f"/first?x=1 127.0.0.1 {host}"
        body = b"x" * (3 * 1024 * 1024) + b"tail"  # streamed through, several chunks
        assert http.post("/upload", content=body).text == f"got {len(body)} bytes ending tail"
        assert http.get("/again").text.startswith("/again ")
    run_inproc("machines", "delete", "--yes", "--force", r.stdout.strip(), env=env)
