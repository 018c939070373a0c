"""The sandbox under abuse (issue 17, items 5-8): what cannot be stored is refused, stored rows that cannot be sent
are repaired at start, bodies and exec output are bounded, logs are kept within a retention and removed with
their machine, and a full disk stops neither `stop` nor `delete --force`."""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager

import pytest

from support.env import clean_environ, cli_environ
from support.cli import run_cli
from support.util import machine_payload, name, problem


def _cli_env(sb, tmp_path) -> dict:
    return cli_environ(tmp_path / "config", sandbox=sb)


# -- item 5: what cannot be stored ------------------------------------------------------------------------------
def test_a_lone_surrogate_or_nan_in_a_create_is_refused_and_nothing_is_written(sandbox):
    with sandbox.client() as api:
        fleet = api.post("/fleets", json={"name": name("poison")}).json()["id"]
        before = api.get(f"/fleets/{fleet}/machines", params={"destroyed": "true"}).json()
        good = json.dumps(machine_payload(image="IMAGE", skip_start=False))
        for bad in ('"nginx\\ud800"', '"nginx\\udfff tail"', "NaN", "Infinity", "-Infinity"):
            r = api.post(f"/fleets/{fleet}/machines", content=good.replace('"IMAGE"', bad).encode(),
                         headers={"Content-Type": "application/json"})
            body = problem(r, 400, "INVALID_ARGUMENT")
            assert "surrogate" in body["detail"] or "not valid JSON" in body["detail"], body
        deep = b'{"region": "gra-1", "config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        problem(api.post(f"/fleets/{fleet}/machines", content=deep, headers={"Content-Type": "application/json"}),
                400, "INVALID_ARGUMENT")
        # a fleet or gateway name, a stop config: every JSON body goes through the same check
        problem(api.post("/fleets", content=b'{"name": "a\\ud800"}'), 400, "INVALID_ARGUMENT")
        after = api.get(f"/fleets/{fleet}/machines", params={"destroyed": "true"})
        assert after.status_code == 200 and after.json() == before == []
        api.delete(f"/fleets/{fleet}")


def test_rows_stored_before_the_check_are_repaired_at_start(fresh_sandbox, tmp_path):
    sb = fresh_sandbox
    with sb.client() as api:
        fleet = api.post("/fleets", json={"name": name("repair")}).json()["id"]
        ids = [api.post(f"/fleets/{fleet}/machines", json=machine_payload(skip_start=True)).json()["id"]
               for _ in range(3)]
        log_machine = ids[2]
    sb.stop()
    # What a server before the check stored: a config with a lone surrogate, an event payload with one and a
    # NaN, a config that is not JSON at all, and a log row from before lines were stored encoded.
    db = sqlite3.connect(sb.data_dir / "state.db")
    db.execute("UPDATE machines SET config = ? WHERE id = ?",
               ('{"image": "nginx\\ud800", "guest": {"cpus": 1, "memory_mb": 256, "cpu_kind": "shared"}}', ids[0]))
    db.execute("UPDATE events SET payload = ? WHERE machine_id = ?", ('{"x": "\\udfff", "n": NaN}', ids[0]))
    db.execute("UPDATE machines SET config = ? WHERE id = ?", ("{not json", ids[1]))
    db.execute("INSERT INTO logs (machine_id, ts, instance_id, source, level, message) VALUES (?, 1, 'i', "
               "'stdout', 'info', 'an old line')", (log_machine,))
    db.commit()
    db.close()
    sb.start()
    assert "repaired 3 stored JSON" in sb.log_text()
    with sb.client() as api:
        listed = api.get(f"/fleets/{fleet}/machines")
        assert listed.status_code == 200
        machines = {m["id"]: m for m in listed.json()}
        assert machines[ids[0]]["config"]["image"] == "nginx\ufffd"
        assert machines[ids[0]]["events"][0]["payload"] == {"x": "\ufffd", "n": None}
        assert machines[ids[1]]["config"] == {}
        for mid in ids:
            shown = api.get(f"/fleets/{fleet}/machines/{mid}")
            assert shown.status_code == 200 and shown.json() == machines[mid]
        logs = api.get(f"/fleets/{fleet}/machines/{log_machine}/logs", headers={"Accept": "application/x-ndjson"})
        assert [json.loads(x)["message"] for x in logs.text.splitlines()][-1] == "an old line"
    env = _cli_env(sb, tmp_path)
    done = run_cli("machines", "list", "--fleet", fleet, env=env)
    assert done.returncode == 0, done.stderr
    assert ids[0] in done.stdout and "Traceback" not in done.stderr
    for mid in ids:
        gone = run_cli("machines", "delete", mid, "--force", "--yes", "--fleet", fleet, env=env)
        assert gone.returncode == 0, gone.stderr


# -- item 8: bounded bodies and exec output ---------------------------------------------------------------------
def test_a_body_over_one_mib_is_refused_with_413_and_nothing_is_created(sandbox):
    with sandbox.client() as api:
        fleet = api.post("/fleets", json={"name": name("big")}).json()["id"]
        payload = machine_payload(skip_start=True)
        payload["metadata"] = {"annotations": {"padding": "x" * (1024 * 1024)}}  # a known key: no 422
        problem(api.post(f"/fleets/{fleet}/machines", json=payload), 413, "INVALID_ARGUMENT")

        def chunked():  # no Content-Length: the limit holds while reading
            body = json.dumps(payload).encode()
            for i in range(0, len(body), 65536):
                yield body[i:i + 65536]

        problem(api.post(f"/fleets/{fleet}/machines", content=chunked(), headers={"Content-Type": "application/json"}),
                413, "INVALID_ARGUMENT")
        payload["metadata"] = {"annotations": {"padding": "x" * 1000}}  # the same body, small: accepted
        made = api.post(f"/fleets/{fleet}/machines", json=payload)
        assert made.status_code == 201, made.text
        assert [m["id"] for m in api.get(f"/fleets/{fleet}/machines").json()] == [made.json()["id"]]
        api.delete(f"/fleets/{fleet}/machines/{made.json()['id']}", params={"force": "true"})


def test_exec_output_is_capped_and_says_where_it_was_cut(sandbox, tmp_path):
    import sys

    from valyent_cli.local.supervisor import EXEC_OUTPUT_LIMIT

    with sandbox.client() as api:
        fleet = api.post("/fleets", json={"name": name("exec")}).json()["id"]
        mid = api.post(f"/fleets/{fleet}/machines", json=machine_payload()).json()["id"]
        api.get(f"/fleets/{fleet}/machines/{mid}/wait", params={"status": "running", "timeout": 30})
        big = 3 * EXEC_OUTPUT_LIMIT
        code = f"import sys; sys.stdout.write('o' * {big}); sys.stderr.write('e' * 10)"
        r = api.post(f"/fleets/{fleet}/machines/{mid}/exec", json={"cmd": [sys.executable, "-c", code], "timeout_ms": 30000},
                     timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["exit_code"] == 0
        assert out["stdout"] == "o" * EXEC_OUTPUT_LIMIT
        assert out["stderr"] == ("e" * 10 + f"exec: stdout cut at {EXEC_OUTPUT_LIMIT} bytes by the sandbox; "
                                 f"{big - EXEC_OUTPUT_LIMIT} more bytes were dropped\n")
        small = api.post(f"/fleets/{fleet}/machines/{mid}/exec", json={"cmd": ["echo", "hi"], "timeout_ms": 30000}).json()
        assert small["stdout"] == "hi\n" and small["stderr"] == ""
        done = run_cli("machines", "exec", mid, "--fleet", fleet, "--", sys.executable, "-c", code,
                       env=_cli_env(sandbox, tmp_path), text=False)
        assert done.returncode == 0 and len(done.stdout) == EXEC_OUTPUT_LIMIT
        assert b"stdout cut at" in done.stderr
        api.delete(f"/fleets/{fleet}/machines/{mid}", params={"force": "true"})


# -- item 7: log retention, logs of destroyed machines, server.log ----------------------------------------------
def _local_env(tmp_path) -> dict:
    return cli_environ(tmp_path / "config", local_dir=tmp_path / "sbx")


def _log_rows(data_dir, machine_id: str) -> list[str]:
    db = sqlite3.connect(f"file:{data_dir / 'state.db'}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT message FROM logs WHERE machine_id = ? ORDER BY id", (machine_id,))]
    finally:
        db.close()


def test_local_start_sets_a_log_retention_and_rotates_server_log(tmp_path):
    import sys

    from support.env import free_port
    from support.util import wait_until
    from valyent_cli.local import daemon
    from valyent_cli.local.procs import find_machine_processes
    from valyent_cli.local.runner import SERVER_LOG_MAX

    env = _local_env(tmp_path)
    sbx = tmp_path / "sbx"
    sbx.mkdir(mode=0o700)
    (sbx / "server.log").write_bytes(b"old line\n" * (SERVER_LOG_MAX // 9 + 1))
    try:
        bad = run_cli("local", "start", "--log-max-bytes", "lots", env=env)
        assert bad.returncode == 2 and "--log-max-bytes" in bad.stderr
        started = run_cli("local", "start", "--port", str(free_port()), "--log-max-lines", "1000",
                          "--log-max-bytes", "1M", env=env)
        assert started.returncode == 0, started.stderr
        assert (sbx / "server.log.1").read_bytes().startswith(b"old line\n")
        assert (sbx / "server.log").stat().st_size < 10_000  # this start's lines, in a new file
        code = ("import sys, time; [print(f'line {i}', flush=i % 500 == 0) for i in range(6000)]; sys.stdout.flush(); "
                "time.sleep(600)")
        created = run_cli("machines", "create", "--image", "img", "-q", "--", sys.executable, "-c", code, env=env)
        assert created.returncode == 0, created.stderr
        mid = created.stdout.strip()

        def settled():
            rows = _log_rows(sbx, mid)
            return rows and rows[-1] == "line 5999" and rows

        rows = wait_until(settled, timeout=30, message="the last line stored")
        assert 1000 <= len(rows) <= 1100 + 100, len(rows)  # pruned once 10 % over, down to the limit
        assert rows[-1000:] == [f"line {i}" for i in range(5000, 6000)]  # the newest, in order
        shown = run_cli("logs", mid, env=env)
        assert shown.returncode == 0 and shown.stdout.splitlines()[-1].endswith("line 5999")
        again = run_cli("local", "start", "--log-max-lines", "5", env=env)
        assert again.returncode == 0 and "retention is unchanged" in again.stderr
    finally:
        daemon.stop(sbx)
    assert not find_machine_processes(sbx)


def test_a_log_is_kept_within_its_bytes_and_a_destroyed_machines_log_is_removed(tmp_path):
    import sys

    from support.sandbox import Sandbox
    from support.util import wait_until

    # the server gets the retention in its environment, as `local start` passes it
    sb = Sandbox(env={"VALYENT_LOCAL_LOG_MAX_BYTES": "50000"}, data_dir=tmp_path / "data").start()
    try:
        line = "y" * 99
        code = f"import sys, time; sys.stdout.write('{line}\\n' * 3000); sys.stdout.flush(); time.sleep(600)"
        with sb.client() as api:
            fleet = api.post("/fleets", json={"name": name("ret")}).json()["id"]
            mid = api.post(f"/fleets/{fleet}/machines", json=machine_payload([sys.executable, "-c", code])).json()["id"]
            keep = api.post(f"/fleets/{fleet}/machines", json=machine_payload(["echo", "kept"])).json()["id"]
            wait_until(lambda: len(_log_rows(sb.data_dir, keep)) >= 1, timeout=20, message="a line of the other")
            wait_until(lambda: 0 < sum(map(len, _log_rows(sb.data_dir, mid))) <= 55_000 and
                       len(_log_rows(sb.data_dir, mid)) >= 400, timeout=30, message="the log pruned to its bytes")
            assert sum(map(len, _log_rows(sb.data_dir, mid))) >= 45_000
            r = api.delete(f"/fleets/{fleet}/machines/{mid}", params={"force": "true"})
            assert r.status_code == 200
        sb.stop()
        assert _log_rows(sb.data_dir, mid)  # within the grace (followers read the last lines)
        sb.start()  # a start removes what the grace left
        wait_until(lambda: not _log_rows(sb.data_dir, mid), timeout=20, message="the destroyed machine's log gone")
        assert _log_rows(sb.data_dir, keep) == ["kept"]
    finally:
        sb.finish()


# -- item 6: a full disk ----------------------------------------------------------------------------------------
def _can_mount_tmpfs() -> bool:
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


class _TmpfsSandbox:
    """A sandbox whose data dir is a small tmpfs of its own (a user and mount namespace: no root needed, and the
    file system goes away with the server). `prefill` fills the disk before the server starts."""

    def __init__(self, tmp_path, size: str, prefill: bool = False, state: bool = False):
        import secrets

        from support.env import free_port

        self.dir = tmp_path / "disk"
        self.dir.mkdir()
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.initd = f"http://127.0.0.1:{self.port}/initd/{{machine_id}}"
        self.log = tmp_path / "server.log"
        fill = 'dd if=/dev/zero of="$D/fill" bs=64k 2>/dev/null; ' if prefill else ""
        if state:  # a state.db from an earlier run, as a sandbox that ran before has
            fill = ('"$PY" -c "import sys; from valyent_cli.local.store import Store; Store(sys.argv[1]).close()" '
                    '"$D/state.db" && ' + fill)
        self.script = (f'mount -t tmpfs -o size={size},mode=0700 tmpfs "$D" && {fill}'
                       'printf %s "$T" > "$D/token" 2>/dev/null; chmod 600 "$D/token" 2>/dev/null; '
                       f'exec "$PY" -m valyent_cli local serve --port {self.port} --data-dir "$D"')

    def start(self):
        import subprocess
        import sys

        env = clean_environ()
        env.update(D=str(self.dir), T=self.token, PY=sys.executable)
        self.proc = subprocess.Popen(["unshare", "-Urm", "sh", "-c", self.script], env=env, stdin=subprocess.DEVNULL,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 20) -> None:
        import httpx

        from support.util import wait_until

        def up():
            assert self.proc.poll() is None, self.log.read_text()
            try:
                return httpx.get(self.url.removesuffix("/v1") + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=timeout, message="the sandbox on its tmpfs")

    def client(self):
        import httpx

        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def stop(self) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@contextmanager
def _on_a_tmpfs(tmp_path, size: str):
    """(a sandbox on a tmpfs of ``size``, the CLI's environment for it); skips where user namespaces or tmpfs
    mounts are not available; the server must stop cleanly (exit 0) at the end."""
    if not _can_mount_tmpfs():
        pytest.skip("needs unshare -Urm and a tmpfs mount (user namespaces)")
    sb = _TmpfsSandbox(tmp_path, size).start()
    try:
        sb.wait_ready()
        yield sb, cli_environ(tmp_path / "config", sandbox=sb, fleet="default")
    finally:
        assert sb.stop() == 0, sb.log.read_text()


def test_a_full_disk_stops_neither_stop_nor_delete_and_a_start_on_it_says_so(tmp_path):
    from support.util import wait_until

    with _on_a_tmpfs(tmp_path, "12m") as (sb, env):
        idle = run_cli("machines", "create", "--image", "idle", "-q", env=env)
        assert idle.returncode == 0, idle.stderr
        noisy = run_cli("machines", "create", "--image", "yes", "-q", "--", "yes", "a log line to fill the disk",
                        env=env)
        assert noisy.returncode == 0, noisy.stderr
        noisy_id, idle_id = noisy.stdout.strip(), idle.stdout.strip()
        wait_until(lambda: "dropping its log lines: no space left" in sb.log.read_text(), timeout=60,
                   message="the disk full and the server saying so")
        stopped = run_cli("machines", "stop", noisy_id, env=env)
        assert stopped.returncode == 0, stopped.stderr
        with sb.client() as api:
            wait_until(lambda: api.get(f"/fleets/default/machines/{noisy_id}").json()["state"] == "stopped",
                       timeout=20, message="the noisy machine stopped")
        deleted = run_cli("machines", "delete", idle_id, "--force", "--yes", env=env)
        assert deleted.returncode == 0, deleted.stderr
        deleted = run_cli("machines", "delete", noisy_id, "--force", "--yes", env=env)
        assert deleted.returncode == 0, deleted.stderr
        assert "Traceback" not in sb.log.read_text() and "no transaction is active" not in sb.log.read_text()

    (tmp_path / "again").mkdir()
    full = _TmpfsSandbox(tmp_path / "again", "4m", prefill=True).start()
    assert full.proc.wait(30) == 1
    out = full.log.read_text()
    # one line naming what could not be written and the way out (the start's preflight, or the server itself)
    assert ("no space left on the disk" in out or "free some space" in out) and "Traceback" not in out, out


def test_a_start_on_a_full_disk_with_an_earlier_state_says_the_disk_is_full(tmp_path):
    """Issue 27, item 16: with the state.db of an earlier run on a full disk, the start said `disk I/O error`
    about state.db (a damaged file?); the space is checked first, and the message says the disk is full."""
    if not _can_mount_tmpfs():
        pytest.skip("needs unshare -Urm and a tmpfs mount (user namespaces)")
    full = _TmpfsSandbox(tmp_path, "4m", prefill=True, state=True).start()
    assert full.proc.wait(30) == 1
    out = full.log.read_text()
    assert "no space left on the device that holds" in out and "Traceback" not in out, out
    assert "disk I/O error" not in out and "damaged" not in out, out


def test_a_big_list_is_built_off_the_event_loop(fresh_sandbox):
    """While a 60,000-machine list is being built, the server answers other requests: /healthz comes back before
    the list's headers do. (Built on the event loop, the list would hold up everything until it was sent.)"""
    import threading
    import time

    import httpx

    sb = fresh_sandbox
    with sb.client() as api:
        fleet = api.post("/fleets", json={"name": name("huge")}).json()["id"]
    sb.stop()
    db = sqlite3.connect(sb.data_dir / "state.db")
    config = json.dumps(machine_payload()["config"])
    db.executemany(
        "INSERT INTO machines (id, namespace, fleet_id, instance_id, machine_version, region, config, created_at, "
        "updated_at, state) VALUES (?, 'default', ?, 'i', 'v', 'gra-1', ?, '2026-01-01T00:00:00.000Z', "
        "'2026-01-01T00:00:00.000Z', 'created')",
        ((f"m{i:06d}", fleet, config) for i in range(60_000)),
    )
    db.commit()
    db.close()
    sb.start()
    seen: dict[str, float] = {}

    import http.client

    # sent (request() returns once the request is written to the server's socket) before /healthz is asked:
    # a condition, not a guess at how long a thread takes to start
    conn = http.client.HTTPConnection("127.0.0.1", sb.port, timeout=120)
    conn.request("GET", f"/v1/fleets/{fleet}/machines", headers=sb.headers)

    def big_list():
        r = conn.getresponse()
        seen["list"] = time.monotonic()
        assert r.status == 200
        seen["count"] = len(json.loads(r.read()))
        conn.close()

    worker = threading.Thread(target=big_list)
    worker.start()
    assert httpx.get(sb.base + "/healthz", timeout=60).status_code == 200
    seen["health"] = time.monotonic()
    worker.join(120)
    assert seen["count"] == 60_000
    assert seen["health"] < seen["list"], "the server answered nothing while it built the list"


def test_a_machine_that_fills_the_disk_with_files_can_still_be_stopped_and_deleted(tmp_path):
    """No free byte left (a machine wrote a file until ENOSPC): the sandbox gives up its reserve for the state
    changes, so stop and delete --force still work."""
    from support.util import wait_until

    with _on_a_tmpfs(tmp_path, "10m") as (sb, env):
        made = run_cli("machines", "create", "--image", "fill", "-q", "--", "sh", "-c",
                       "dd if=/dev/zero of=big bs=4k; echo full; sleep 600", env=env)
        assert made.returncode == 0, made.stderr
        mid = made.stdout.strip()
        import os

        disk = f"/proc/{sb.proc.pid}/root{sb.dir}"  # the server's own view of its tmpfs

        def free() -> int:
            st = os.statvfs(disk)
            return st.f_bavail * st.f_frsize

        wait_until(lambda: free() < 64 * 1024, timeout=60, message="the disk full")
        stopped = run_cli("machines", "stop", mid, env=env)
        assert stopped.returncode == 0, stopped.stderr
        with sb.client() as api:
            wait_until(lambda: api.get(f"/fleets/default/machines/{mid}").json()["state"] == "stopped", timeout=20,
                       message="the machine stopped")
        deleted = run_cli("machines", "delete", mid, "--force", "--yes", env=env)
        assert deleted.returncode == 0, deleted.stderr
        listed = run_cli("machines", "list", "--all", "--json", env=env)
        assert listed.returncode == 0 and json.loads(listed.stdout)[0]["state"] == "destroyed"
        assert "Traceback" not in sb.log.read_text()

