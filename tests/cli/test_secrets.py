"""Issue 7, secrets: the token never shows in stdout, stderr, `--debug` traces (the HTTP exchanges and the
tracebacks), error messages or exception reprs; files that hold it are private; it is never sent over plain http
to a host that is not loopback, for the API nor for a machine's agent.

Every CLI run of the suite is also checked by helpers.run_cli (and inproc.run_main): the VALYENT_API_TOKEN of its
environment never appears in its output. test_auth.py covers `auth token`, `profiles show` and `--json` outputs.
"""

from __future__ import annotations

import secrets
import stat
import traceback

import pytest
from support.cli import run_inproc, run_main
from support.env import cli_environ, dead_port
from support.faultserver import Close, Hang, Reply, Reset
from support.util import machine_payload

SECRET = "vly_live_" + "s3cr3t" * 6  # long and unmistakable; the fault server accepts any token


def no_token(token: str, *texts: str) -> None:
    for text in texts:
        assert token not in text
        assert token[-12:] not in text  # nor its tail (a masked form shows the last 4 characters at most)


@pytest.fixture(scope="module")
def machine(sandbox):
    from valyent_cli.api import Client

    with Client(sandbox.token, endpoint=sandbox.url, initd_endpoint=sandbox.initd) as client:
        fleet = client.fleets.create(f"secrets-{secrets.token_hex(3)}")
        created = client.machines.create(fleet["id"], machine_payload(["sh", "-c", "echo hello; sleep 600"],
                                                                      image="busybox"))
        client.machines.wait(fleet["id"], created["id"], "running", 30)
        yield fleet["name"], created["id"]
        client.machines.delete(fleet["id"], created["id"], force=True)


def test_debug_traces_against_the_sandbox(cli_env, sandbox, machine):
    fleet, mid = machine
    env = {**cli_env, "VALYENT_FLEET": fleet}
    runs = [
        ("--debug", "machines", "list"),
        ("--debug", "machines", "show", mid[:10]),  # a prefix: a 404, then the list
        ("--debug", "logs", mid),
        ("--debug", "fs", "ls", mid, "/"),
        ("--debug", "machines", "exec", mid, "--", "sh", "-c", "echo $VALYENT_MACHINE_ID"),
        ("--debug", "machines", "show", "zzzzzzzz"),  # exit 4, a traceback
    ]
    for args in runs:
        result = run_inproc(*args, env=env)
        assert "[debug] GET" in result.stderr or "[debug] POST" in result.stderr, (args, result.stderr)
        no_token(sandbox.token, result.stdout, result.stderr)
    assert "Traceback" in result.stderr  # --debug shows it, and it holds no token either
    # the sandbox's own log (its access log included) holds no token
    no_token(sandbox.token, sandbox.log_text())


def test_a_wrong_token_is_refused_and_not_echoed(cli_env):
    wrong = "vly_wrong_" + "0" * 30
    result = run_inproc("--debug", "fleets", "list", env={**cli_env, "VALYENT_API_TOKEN": wrong})
    assert result.returncode == 3, result.stderr
    assert "valyent auth login" in result.stderr
    no_token(wrong, result.stdout, result.stderr)


@pytest.mark.parametrize(
    "answers",
    [
        [Reply(401, json={"errors": [{"message": "Unauthorized access"}]})],
        [Reply(500, "Internal Server Error: token=" + SECRET.upper())] * 3,  # the body is not ours to trust
        [Reply(403, json={"error": "forbidden"})],
        [Reset(b"HTTP/1.1 200 OK\r\nContent-Length: 90\r\n\r\n[{")] * 3,
        [Close()] * 3,
        [Reply(200, b"<html>not json</html>", headers={"Content-Type": "text/html"})],
    ],
    ids=["401", "500", "403", "reset", "closed", "not-json"],
)
def test_debug_traces_against_a_failing_server(fault_server, tmp_path, monkeypatch, answers):
    import time as real_time

    import valyent_cli.api._transport as client_module  # the request loop, which sleeps between retries

    class Clock:  # backoffs recorded, not slept
        monotonic = staticmethod(real_time.monotonic)
        time = staticmethod(real_time.time)
        sleep = staticmethod(lambda seconds: None)

    monkeypatch.setattr(client_module, "time", Clock)
    fault_server.queue(*answers)
    env = cli_environ(tmp_path / "cfg", token=SECRET, url=fault_server.url + "/v1", fleet="web")
    for argv in (["--debug", "machines", "list"], ["--debug", "machines", "create", "--image", "nginx"]):
        result = run_main(argv, env)
        assert result.code in (1, 3), result.err
        assert "[debug]" in result.err and "Traceback" in result.err
        no_token(SECRET, result.out, result.err)
    # the token did go, in the header, where it belongs
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in fault_server.requests)


def test_exceptions_and_reprs_hold_no_token(fault_server, tmp_path, monkeypatch):
    """What a programmer sees: repr() and the formatted traceback of each error, and the objects that hold it."""
    from support.faultserver import client_for

    from valyent_cli import config
    from valyent_cli.api import ValyentError

    fault_server.queue(Reply(401), Reply(500), Hang(), Reply(404, json={"detail": "no such fleet"}))
    seen = []
    with client_for(fault_server, token=SECRET, timeout=0.3, max_retries=0) as client:
        for call in (client.fleets.list, client.fleets.list, lambda: client.fleets.create("x"),
                     lambda: client.fleets.get("x")):
            with pytest.raises(ValyentError) as info:
                call()
            seen.append(info.value)
        no_token(SECRET, repr(client), str(vars(client.fleets)))
    for exc in seen:
        no_token(SECRET, repr(exc), str(exc), "".join(traceback.format_exception(exc)), repr(vars(exc)))

    monkeypatch.setenv("VALYENT_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("VALYENT_API_TOKEN", SECRET)
    monkeypatch.setenv("VALYENT_API_URL", "http://ravel.internal:3000")
    settings = config.load_settings()
    no_token(SECRET, repr(settings), str(settings))
    with pytest.raises(config.InsecureTransportError) as info:
        config.check_transport_safety(settings)
    no_token(SECRET, repr(info.value), str(info.value), "".join(traceback.format_exception(info.value)))


def test_credentials_in_the_endpoint_url_are_not_shown(tmp_path):
    url = f"http://admin:{SECRET}@127.0.0.1:{dead_port()}/v1"
    env = cli_environ(tmp_path / "cfg", token="tok-other-0123456789", url=url)
    result = run_inproc("--debug", "fleets", "list", env=env)
    assert result.returncode == 1
    no_token(SECRET, result.stdout, result.stderr)
    assert "cannot reach" in result.stderr


@pytest.mark.parametrize(
    "variable, value",
    [("VALYENT_API_URL", "http://example.invalid/v1"),
     ("VALYENT_INITD_URL", "http://{machine_id}.machines.example.invalid")],
)
def test_plain_http_to_a_remote_host_is_refused_before_any_request(fault_server, tmp_path, variable, value):
    env = cli_environ(tmp_path / "cfg", token=SECRET, url=fault_server.url + "/v1",
                      initd=fault_server.url + "/initd/{machine_id}", fleet="web", **{variable: value})
    result = run_inproc("fs", "ls", "01jxyz", "/", env=env)
    assert result.returncode == 2, result.stderr
    assert "refusing to send the API token over plain http" in result.stderr
    assert "allow_http" in result.stderr
    assert fault_server.requests == []  # nothing was sent, not even to the API on loopback
    no_token(SECRET, result.stdout, result.stderr)


def test_allow_http_flag_lets_plain_http_through(tmp_path):
    """The explicit opt-in: `--allow-http` (as the profile key or VALYENT_ALLOW_HTTP=1 would) lets the request go."""
    env = cli_environ(tmp_path / "cfg", token=SECRET, url="http://remote.example.invalid/v1")
    refused = run_inproc("fleets", "list", env=env)
    assert refused.returncode == 2 and "--allow-http" in refused.stderr
    allowed = run_inproc("--allow-http", "fleets", "list", env=env)
    assert allowed.returncode == 1 and "cannot resolve host" in allowed.stderr  # it was sent (and found no host)
    no_token(SECRET, allowed.stdout, allowed.stderr)


def test_files_that_hold_the_token_are_private(cli_env, sandbox, tmp_path):
    home = tmp_path / "config"
    bare = {k: v for k, v in cli_env.items() if k != "VALYENT_API_TOKEN"}
    result = run_inproc("auth", "login", "--token-stdin", env=bare, input=sandbox.token)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("config.toml", "config.toml.lock"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    assert sandbox.token in (home / "config.toml").read_text()  # it is there, and only its owner can read it
    assert stat.S_IMODE((sandbox.data_dir / "token").stat().st_mode) == 0o600
    no_token(sandbox.token, result.stdout, result.stderr)
