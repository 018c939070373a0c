"""Issue 17, items 10, 11 and 12: starting the sandbox under contention and on a broken disk, and signals.

* 11: several commands on the `local` profile, or several `local start`, with the sandbox down: one starts it
  (under `start.lock`), the others wait and use it; a failing start shows this start's log only.
* 12: a damaged `state.db`, a full disk: one line naming the file and the way out, no traceback; an interrupted
  `local start` leaves no server behind.
* 10: uploads a killed server left are removed at start (SIGTERM or SIGHUP during `fs get`: test_signals.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.env import cli_environ, free_port
from support.sandbox import Sandbox
from support.cli import Proc, run_cli
from support.util import wait_until


def serve_processes(data_dir: Path) -> list[int]:
    """Sandbox servers (of any state) whose command line names ``data_dir``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and str(data_dir).encode() in argv:
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    if fh.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                        continue
            except OSError:
                continue
            found.append(int(entry))
    return found


@pytest.fixture()
def local(tmp_path):
    """The environment of a user of the local sandbox in tmp_path (data dir, config dir); the sandbox is stopped
    afterwards, and no server of this data dir may be left."""
    data = tmp_path / "data"
    env = cli_environ(tmp_path / "config", local_dir=data)
    yield env, data
    run_cli("local", "stop", env=env)
    left = serve_processes(data)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"sandbox servers left behind: {left}"


def parallel(count: int, argv: list[str], env: dict) -> list[subprocess.CompletedProcess]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: run_cli(*argv, env=env, timeout=90), range(count)))


# -- 11 -----------------------------------------------------------------------------------------------------------
def test_parallel_local_starts_all_succeed_with_one_server(local):
    env, data = local
    port = str(free_port())
    results = parallel(4, ["local", "start", "--port", port], env)
    for result in results:
        assert result.returncode == 0, result.stderr
    started = [r for r in results if "Started the local sandbox" in r.stderr]
    assert len(started) == 1, [r.stderr for r in results]
    assert len(serve_processes(data)) == 1


def test_parallel_commands_on_the_local_profile_with_the_sandbox_down(local):
    env, data = local
    first = run_cli("local", "start", "--port", str(free_port()), env=env)
    assert first.returncode == 0, first.stderr
    assert run_cli("local", "stop", env=env).returncode == 0
    results = parallel(6, ["fleets", "list", "-q"], env)
    for result in results:
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() and "Traceback" not in result.stderr
    assert len(serve_processes(data)) == 1


def test_a_failed_start_shows_this_starts_log_not_stale_tracebacks(local):
    env, data = local
    data.mkdir(mode=0o700)
    (data / "server.log").write_text("Traceback (most recent call last):\n  stale trouble from an earlier run\n")
    (data / "state.db").write_bytes(os.urandom(8192))
    result = run_cli("local", "start", "--port", str(free_port()), env=env)
    assert result.returncode == 1
    assert "stale trouble" not in result.stderr and "Traceback" not in result.stderr, result.stderr


# -- 12 -----------------------------------------------------------------------------------------------------------
def test_a_damaged_state_db_names_the_file_and_the_way_out(local):
    env, data = local
    data.mkdir(mode=0o700)
    db = data / "state.db"
    db.write_bytes(os.urandom(8192))
    result = run_cli("local", "start", "--port", str(free_port()), env=env)
    assert result.returncode == 1, result
    assert str(db) in result.stderr and f"mv {db} {db}.broken" in result.stderr
    assert "Traceback" not in result.stderr
    # and the way out works
    db.rename(db.with_name("state.db.broken"))
    assert run_cli("local", "start", "--port", str(free_port()), env=env).returncode == 0


def test_a_damaged_state_db_through_a_command_on_the_local_profile(local):
    env, data = local
    assert run_cli("local", "start", "--port", str(free_port()), env=env).returncode == 0
    assert run_cli("local", "stop", env=env).returncode == 0
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (data / name).unlink(missing_ok=True)
    (data / "state.db").write_bytes(b"not a database at all" * 500)
    result = run_cli("fleets", "list", env=env)
    assert result.returncode == 1 and "state.db" in result.stderr and "Traceback" not in result.stderr, result


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1)")
@pytest.mark.parametrize("room_kib", [0, 8], ids=["no-room-for-the-log", "no-room-for-the-database"])
def test_a_full_disk_at_start_is_one_line_naming_the_file(tmp_path, room_kib):
    # A 256 KiB tmpfs, filled, in a private mount namespace (user namespaces allow it without privileges).
    mnt = tmp_path / "disk"
    mnt.mkdir()
    script = (f"mount -t tmpfs -o size=256k tmpfs {mnt} || exit 99; mkdir -m 700 {mnt}/d; "
              f"dd if=/dev/zero of={mnt}/fill bs=4k 2>/dev/null; truncate -s -{room_kib}k {mnt}/fill; "
              f"exec {sys.executable} -m valyent_cli local start --data-dir {mnt}/d --port {free_port()}")
    env = cli_environ(tmp_path / "config")
    result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], env=env,
                            capture_output=True, text=True, timeout=60)
    if result.returncode == 99:
        pytest.skip("cannot mount a tmpfs in a user namespace here")
    assert result.returncode == 1, result
    assert "no space left on the device that holds" in result.stderr and str(mnt) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_local_start_leaves_no_server(local, sig):
    env, data = local
    proc = Proc(["local", "start", "--port", str(free_port())], env)
    try:
        # The moment the server process is spawned (its line in server.log), before it can answer.
        proc.wait_for(lambda: "starting:" in _read(data / "server.log"), what="the server to be spawned")
        proc.proc.send_signal(sig)
        code = proc.finish()
    finally:
        proc.kill()
    assert code == (130 if sig == signal.SIGINT else 143), proc.stderr
    assert "Traceback" not in proc.stderr
    wait_until(lambda: not serve_processes(data), 10, message="the half-started server to end")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


# -- 10 (SIGTERM or SIGHUP during `fs get`: tests/cli/test_signals.py) ------------------------------------------
def test_stale_uploads_are_removed_at_start(tmp_path):
    data = tmp_path / "data"
    stale = data / "machines" / "01jstale" / "uploads"
    stale.mkdir(parents=True)
    (stale / "upload-abc123").write_bytes(b"half an upload" * 1000)
    keep = data / "machines" / "01jstale" / "uploads" / "not-an-upload"
    keep.write_bytes(b"x")
    sandbox = Sandbox(data).start()
    try:
        assert not (stale / "upload-abc123").exists()
        assert keep.exists()
    finally:
        sandbox.finish()


@pytest.mark.parametrize("installed", [("podman", "docker"), ("docker",)], ids=["podman-and-docker", "docker-only"])
def test_local_start_driver_auto_picks_podman_first_then_docker(installed, tmp_path):
    """`--driver auto` with both engines picks podman; with only docker (podman not on PATH), docker. PATH holds
    only the engines of the case (the CLI and its server run by the interpreter's full path)."""
    from support.engine import engine_missing
    from support.host import skip_or_fail

    for name in installed:
        reason = engine_missing(name)
        if reason:
            skip_or_fail(reason)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in installed:
        os.symlink(shutil.which(name), bin_dir / name)
    data = tmp_path / "data"
    env = cli_environ(tmp_path / "config", local_dir=data, PATH=str(bin_dir))
    try:
        r = run_cli("local", "start", "--driver", "auto", "--port", str(free_port()), env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        status = run_cli("local", "status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["driver"] == installed[0]
    finally:
        run_cli("local", "stop", env=env)
        for pid in serve_processes(data):
            os.kill(pid, signal.SIGKILL)
def test_an_unknown_driver_is_bad_usage_whether_or_not_a_sandbox_runs(local):
    env, _ = local
    env = {**env, "VALYENT_LOCAL_PORT": ""}
    port = str(free_port())
    for argv, extra, named in ((["--driver", "bogus"], {}, "--driver"), ([], {"VALYENT_LOCAL_DRIVER": "bogus"}, "VALYENT_LOCAL_DRIVER")):
        down = run_cli("local", "start", "--port", port, *argv, env={**env, **extra})
        assert down.returncode == 2 and named in down.stderr and "bogus" in down.stderr, down.stderr
    started = run_cli("local", "start", "--port", port, "--driver", "process", env=env)
    assert started.returncode == 0, started.stderr
    up = run_cli("local", "start", "--port", port, "--driver", "bogus", env=env)
    assert up.returncode == 2 and "--driver" in up.stderr, up.stderr
    from_env = run_cli("local", "start", "--port", port, env={**env, "VALYENT_LOCAL_DRIVER": "podman"})
    assert from_env.returncode == 0, from_env.stderr
    assert "VALYENT_LOCAL_DRIVER=podman is not applied" in from_env.stderr  # as --driver podman says
    flag = run_cli("local", "start", "--port", port, "--driver", "podman", env=env)
    assert "--driver podman is not applied" in flag.stderr


def test_a_second_sandbox_gets_its_own_profile_and_the_first_keeps_local(tmp_path):
    env = cli_environ(tmp_path / "config", XDG_DATA_HOME=str(tmp_path / "xdg"))
    first, second = tmp_path / "first", tmp_path / "second"
    p1, p2 = free_port(), free_port()
    try:
        r = run_cli("local", "start", "--data-dir", str(first), "--port", str(p1), "--driver", "process", env=env)
        assert r.returncode == 0, r.stderr
        r = run_cli("local", "start", "--data-dir", str(second), "--port", str(p2), "--driver", "process", env=env)
        assert r.returncode == 0, r.stderr
        assert "another sandbox still runs" in r.stderr and f"local-{p2}" in r.stderr
        assert "valyent profiles use local" in r.stderr
        local = json.loads(run_cli("profiles", "show", "local", "--json", env=env).stdout)
        assert f":{p1}/" in local["endpoint"] and local["data_dir"] == str(first)
        status = run_cli("local", "status", "--json", env=env)  # the active profile: the second sandbox's
        assert json.loads(status.stdout)["running"] and f":{p2}/" in json.loads(status.stdout)["endpoint"]
        assert run_cli("profiles", "use", "local", env=env).returncode == 0
        status = json.loads(run_cli("local", "status", "--json", env=env).stdout)
        assert status["running"] and f":{p1}/" in status["endpoint"]  # not "Running: no"
    finally:
        run_cli("local", "stop", "--data-dir", str(second), env=env)
        run_cli("local", "stop", "--data-dir", str(first), env=env)
