"""`valyent local start/status/stop` as a user runs them, with a private config dir and sandbox data dir."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from support.host import cannot_isolate, expected_isolation
from support.env import cli_environ, free_port
from support.cli import ok, run_cli
from valyent_cli.local import daemon
from valyent_cli.local.procs import find_machine_processes

try:
    from valyent_cli.config import save_local_profile  # noqa: F401
    HAVE_CONFIG = True
except ImportError:  # pragma: no cover
    HAVE_CONFIG = False


@pytest.fixture()
def local_env(tmp_path):
    yield cli_environ(tmp_path / "config", local_dir=tmp_path / "sbx")
    daemon.stop(tmp_path / "sbx")  # whatever a failed test left running
    assert not find_machine_processes(tmp_path / "sbx")


def test_serve_refuses_a_remote_host_without_allow_remote(local_env):
    r = run_cli("local", "serve", "--host", "0.0.0.0", "--port", str(free_port()), env=local_env, timeout=30)
    assert r.returncode == 2 and "--allow-remote" in r.stderr and "Traceback" not in r.stderr


def test_serve_reports_a_busy_port(local_env, sandbox):
    r = run_cli("local", "serve", "--port", str(sandbox.port), env=local_env, timeout=30)
    assert r.returncode == 1 and "already in use" in r.stderr


@pytest.mark.skipif(not HAVE_CONFIG, reason="valyent_cli.config.save_local_profile does not exist yet")
def test_start_status_stop(local_env, tmp_path):
    data = tmp_path / "sbx"
    port = free_port()
    down = run_cli("local", "status", "--json", env=local_env)
    st = json.loads(down.stdout)
    assert down.returncode == 3 and st["running"] is False and st["data_dir"] == str(data)

    r = ok(run_cli("local", "start", "--port", str(port), env=local_env))
    assert r.stdout == ""
    assert "Profile `local` is now active" in r.stderr and "valyent profiles list" in r.stderr
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(data / "token").st_mode) == 0o600
    info = json.loads((data / "server.json").read_text())
    assert info["endpoint"] == f"http://127.0.0.1:{port}/v1" and info["port"] == port
    assert int((data / "server.pid").read_text()) == info["pid"]
    config = (tmp_path / "config" / "config.toml").read_text()
    assert f"http://127.0.0.1:{port}/v1" in config and (data / "token").read_text().strip() in config
    # the sandbox's own namespace, so that namespace-scoped commands work without flags
    assert 'namespace = "default"' in config
    ok(run_cli("secrets", "set", "db-password", input="hunter2\n", env=local_env))
    assert "db-password" in ok(run_cli("secrets", "list", env=local_env)).stdout
    # machines get their own root, or `start` said once why not
    assert info["isolation"] == expected_isolation(), cannot_isolate()  # not "either" (support/host.py)
    assert ("not isolated" in r.stderr) == (info["isolation"] == "none")

    again = ok(run_cli("local", "start", env=local_env))
    assert "already running" in again.stderr

    st = json.loads(ok(run_cli("local", "status", "--json", env=local_env)).stdout)
    assert st["running"] is True and st["pid"] == info["pid"] and st["endpoint"] == info["endpoint"]
    assert st["machines"] == 0
    human = ok(run_cli("local", "status", env=local_env))
    assert info["endpoint"] in human.stdout and "Running:  yes" in human.stdout
    assert st["isolation"] == info["isolation"] and "Isolated:" in human.stdout

    # the profile just made active is enough to use the sandbox
    created = ok(run_cli("machines", "create", "--image", "nginx", "-q", env=local_env))
    machine_id = created.stdout.strip()
    assert machine_id
    assert {m for _, m in find_machine_processes(data)} == {machine_id}  # its launcher, init and workload
    assert json.loads(ok(run_cli("local", "status", "--json", env=local_env)).stdout)["machines"] == 1

    r = ok(run_cli("local", "stop", env=local_env))
    assert "Stopped" in r.stderr
    assert not find_machine_processes(data)
    down = run_cli("local", "status", "--json", env=local_env)
    assert down.returncode == 3 and json.loads(down.stdout)["running"] is False  # as `systemctl status` (issue 24)
    assert "not running" in ok(run_cli("local", "stop", env=local_env)).stderr

    # A command on the local profile while the sandbox is down starts it first...
    listed = ok(run_cli("machines", "list", "-q", env=local_env))
    assert "Starting the local sandbox" in listed.stderr and listed.stdout.split() == [machine_id]
    ok(run_cli("local", "stop", env=local_env))
    # ...even after its data dir was wiped (a new token): the profile follows the new token instead of a 401.
    import shutil

    shutil.rmtree(data)
    fresh = ok(run_cli("machines", "list", "--json", env=local_env))
    assert json.loads(fresh.stdout) == []
    assert (data / "token").read_text().strip() in (tmp_path / "config" / "config.toml").read_text()
    ok(run_cli("local", "stop", env=local_env))


def test_ensure_running_starts_once(tmp_path):
    data = tmp_path / "sbx"
    port = free_port()
    try:
        info = daemon.ensure_running(data, port=port)
        assert info["port"] == port and info["token"] == (data / "token").read_text().strip()
        t0 = time.monotonic()
        again = daemon.ensure_running(data)
        assert again["pid"] == info["pid"] and time.monotonic() - t0 < 1
        assert daemon.status(data)["running"] is True
    finally:
        assert daemon.stop(data) is not None
    assert daemon.status(data)["running"] is False
    # it comes back on the port it last used
    try:
        assert daemon.ensure_running(data)["port"] == port
    finally:
        daemon.stop(data)


def test_without_namespaces_start_says_so_once_and_machines_run_as_before(local_env, tmp_path):
    """The documented fallback (forced here; it is what a kernel without user namespaces gets)."""
    env = {**local_env, "VALYENT_LOCAL_ISOLATION": "off"}
    port = free_port()
    first = ok(run_cli("local", "start", "--port", str(port), env=env))
    assert "not isolated" in first.stderr and "VALYENT_LOCAL_ISOLATION=off" in first.stderr
    again = ok(run_cli("local", "start", env=env))
    assert "not isolated" not in again.stderr  # once
    assert "Isolated: no" in ok(run_cli("local", "status", env=env)).stdout
    mid = ok(run_cli("machines", "create", "--image", "alpine", "-q", "--volume", "kept:/data", "--", "sleep", "60",
                     env=env)).stdout.strip()
    root = tmp_path / "sbx" / "machines" / mid / "root"
    # a plain process in its directory, its volume a symlink there
    assert ok(run_cli("machines", "exec", mid, "--", "pwd", env=env)).stdout.strip() == str(root)
    ok(run_cli("machines", "exec", mid, "--", "sh", "-c", "echo v > data/f", env=env))
    assert (tmp_path / "sbx" / "volumes" / "default" / "kept" / "f").read_text() == "v\n"
    assert ok(run_cli("fs", "cat", mid, "/data/f", env=env)).stdout == "v\n"
    ok(run_cli("local", "stop", env=env))


def test_serve_says_how_to_connect_and_a_token_from_the_environment_is_named(tmp_path, local_env):
    import shlex

    from support.cli import Proc

    port = free_port()
    proc = Proc(["local", "serve", "--port", str(port)], local_env)
    try:
        proc.wait_for(lambda: "--token-stdin" in proc.stderr, what="the connect line")
        line = next(x.strip() for x in proc.err if x.strip().startswith("valyent profiles create"))
        argv, token_file = shlex.split(line.split(" < ")[0]), line.split(" < ")[1]
        assert str(tmp_path / "sbx" / "token") == token_file and f"127.0.0.1:{port}/v1" in line
        from support.util import wait_until

        wait_until(lambda: (tmp_path / "sbx" / "token").exists(), 20, message="the token file")
        ok(run_cli(*argv[1:], env=local_env, input=(tmp_path / "sbx" / "token").read_text()))
        ok(run_cli("fleets", "list", env=local_env))  # the profile it said to make works
        wrong = run_cli("fleets", "list", env={**local_env, "VALYENT_API_TOKEN": "vlt_not_the_sandbox_token"})
        assert wrong.returncode == 3
        assert "VALYENT_API_TOKEN" in wrong.stderr and "profile sandbox" in wrong.stderr
        assert "auth_scheme" not in wrong.stderr  # not Ravel's hint
    finally:
        proc.interrupt()
