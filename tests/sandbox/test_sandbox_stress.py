"""Issue 7, the sandbox under stress and attack: filesystem escapes through the CLI, `kill -9` of the server in the
middle of a burst of creates, 200 API calls at once and 20 live followers at once.

Covered elsewhere: escapes at the HTTP level (test_local_fs.py), requests without or with a wrong token
(test_local_server.py, and through the CLI in test_secrets.py), kill -9 of an idle server (test_local_recovery.py).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from datetime import datetime

import httpx
import pytest
from support.cli import run_cli
from support.util import machine_payload, wait_until

STATES = {"created", "preparing", "starting", "running", "stopping", "stopped", "destroying", "destroyed"}
SETTLED = {"created", "running", "stopped", "destroyed"}


def _client(sandbox):
    from valyent_cli.api import Client

    return Client(sandbox.token, endpoint=sandbox.url, initd_endpoint=sandbox.initd)


@pytest.fixture(scope="module")
def box(sandbox):
    """A fleet of this module's own with a running machine."""
    client = _client(sandbox)
    fleet = client.fleets.create(f"stress-{secrets.token_hex(3)}")
    mid = client.machines.create(fleet["id"], machine_payload(["sh", "-c", "sleep 600"], image="busybox"))["id"]
    client.machines.wait(fleet["id"], mid, "running", 30)
    yield {"client": client, "fleet": fleet, "id": mid, "root": sandbox.data_dir / "machines" / mid / "root"}
    client.machines.delete(fleet["id"], mid, force=True)
    client.close()


# -- filesystem escapes, through the CLI ------------------------------------------------------------------------
def test_fs_escapes_are_refused_through_the_cli(cli_env, box, tmp_path):
    env = {**cli_env, "VALYENT_FLEET": box["fleet"]["name"]}
    mid, root = box["id"], box["root"]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("do not read")
    os.symlink(str(outside), root / "abs-link")  # an absolute symlink out of the machine
    (root / "sub").mkdir(exist_ok=True)
    os.symlink("../../..", root / "sub" / "up")  # a relative one, climbing out through a parent
    upload = tmp_path / "planted.txt"
    upload.write_text("pwned")
    try:
        attempts = [
            ("fs", "cat", mid, "../../etc/passwd"),
            ("fs", "cat", mid, "/../../../../etc/passwd"),
            ("fs", "cat", mid, "/abs-link/secret"),
            ("fs", "get", mid, "/abs-link/secret", str(tmp_path / "got")),
            ("fs", "ls", mid, "/abs-link"),
            ("fs", "ls", mid, "/sub/up"),
            ("fs", "stat", mid, "/sub/up/etc/passwd"),
            ("fs", "put", mid, str(upload), "/abs-link/planted.txt"),
            ("fs", "put", mid, str(upload), "/sub/up/planted.txt"),
            ("fs", "mkdir", mid, "/abs-link/newdir"),
            ("fs", "rm", mid, "/abs-link/secret"),
        ]
        for args in attempts:
            result = run_cli(*args, env=env)
            assert result.returncode == 1, (args, result.returncode, result.stderr)
            lines = result.stderr.splitlines()
            assert lines[0].startswith("Error: ") and "Traceback" not in result.stderr, (args, result.stderr)
            assert "escapes the machine's root" in lines[0] or "symlink" in lines[0], lines[0]
            assert "root:" not in result.stdout and "do not read" not in result.stdout
        assert sorted(p.name for p in outside.iterdir()) == ["secret"]
        assert (outside / "secret").read_text() == "do not read"
        assert not (tmp_path / "got").exists()
    finally:
        (root / "abs-link").unlink()
        (root / "sub" / "up").unlink()


# -- kill -9 in the middle of a burst of creates ----------------------------------------------------------------
def test_kill9_during_a_burst_of_creates_leaves_a_consistent_store_and_no_orphans(fresh_sandbox):
    sb = fresh_sandbox
    acknowledged: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def creator() -> None:
        with sb.client(timeout=10) as api:
            for _ in range(15):
                if stop.is_set():
                    return
                try:
                    r = api.post("/fleets/default/machines", json=machine_payload(["sh", "-c", "sleep 600 & wait"]))
                except httpx.TransportError as exc:
                    failures.append(type(exc).__name__)
                    return
                if r.status_code != 201:
                    failures.append(str(r.status_code))
                    return
                acknowledged.append(r.json()["id"])

    threads = [threading.Thread(target=creator) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acknowledged) >= 6, 30, message="a few creates")
    sb.kill9()  # mid-burst: other creates are in flight
    stop.set()
    for t in threads:
        t.join(15)
    assert not any(t.is_alive() for t in threads)
    sb.start()

    with sb.client() as api:
        def machines() -> list[dict]:
            r = api.get("/fleets/default/machines", params={"destroyed": "true"})
            assert r.status_code == 200
            return r.json()

        # every create the server acknowledged survived the crash
        listed = machines()
        assert set(acknowledged) <= {m["id"] for m in listed}
        # the restarted server reconciles: no machine is left half-way
        wait_until(lambda: all(m["state"] in SETTLED for m in machines()), 20, message="states to settle")
        listed = machines()
        for m in listed:
            got = api.get(f"/fleets/default/machines/{m['id']}")
            assert got.status_code == 200, got.text
            assert got.json()["state"] in STATES
            events = api.get(f"/fleets/default/machines/{m['id']}/events").json()
            assert events and events[0]["type"] == "machine.created", events
            stamps = [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in events]
            assert stamps == sorted(stamps), events
            assert events[-1]["status"] == got.json()["state"], (events[-1], got.json()["state"])
        # no orphan: every process carrying this sandbox's marker belongs to a machine that is running
        running = {m["id"] for m in listed if m["state"] == "running"}
        wait_until(lambda: {mid for _, mid in sb.machine_processes()} <= running, 10,
                   message=f"no process of a machine that is not running: {sb.machine_processes()}")
        # and the store still takes writes
        r = api.post("/fleets/default/machines", json=machine_payload(["true"], skip_start=True))
        assert r.status_code == 201, r.text
    # fresh_sandbox's teardown: SIGTERM, then no machine process may outlive the server


# -- load -------------------------------------------------------------------------------------------------------
def test_200_concurrent_api_calls(sandbox, box):
    fleet, mid = box["fleet"]["id"], box["id"]
    paths = [("/fleets", 200), (f"/fleets/{fleet}/machines", 200), (f"/fleets/{fleet}/machines/{mid}", 200),
             (f"/fleets/{fleet}/machines/{mid}/events", 200), (f"/fleets/{fleet}/machines/nope", 404)]
    start = threading.Barrier(200)
    results: list[tuple[str, int | str]] = []

    def call(i: int) -> None:
        path, _ = paths[i % len(paths)]
        try:
            start.wait(30)
            r = httpx.get(sandbox.url + path, headers=sandbox.headers, timeout=60)
            results.append((path, r.status_code))
        except Exception as exc:  # noqa: BLE001 - reported below
            results.append((path, repr(exc)))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(200)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert len(results) == 200
    expected = dict(paths)
    wrong = [(p, s) for p, s in results if s != expected[p]]
    assert not wrong, wrong[:5]
    assert time.monotonic() - started < 90


def test_20_concurrent_live_followers(sandbox, box):
    client, fleet = box["client"], box["fleet"]["id"]
    ticker = client.machines.create(fleet, machine_payload(
        ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"], image="busybox"))["id"]
    try:
        client.machines.wait(fleet, ticker, "running", 30)
        wait_until(lambda: len(client.machines.logs(fleet, ticker)) >= 2, 15, message="the first ticks")
        target = len(client.machines.logs(fleet, ticker)) + 8  # each follower must also see live lines
        got: dict[int, list[int]] = {}
        errors: list[str] = []

        def follow(n: int) -> None:
            from valyent_cli.api import Client

            ticks: list[int] = []
            try:
                with Client(sandbox.token, endpoint=sandbox.url, initd_endpoint=sandbox.initd) as own:
                    for entry in own.machines.follow_logs(fleet, ticker, idle_timeout=10):
                        ticks.append(int(entry["message"].split()[1]))
                        if len(ticks) >= target:
                            break
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(f"follower {n}: {exc!r}")
            got[n] = ticks

        threads = [threading.Thread(target=follow, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[:3]
        assert len(got) == 20
        for n, ticks in got.items():
            assert ticks == list(range(1, target + 1)), (n, ticks)  # none lost, none twice, in order
        assert httpx.get(sandbox.base + "/healthz", timeout=5).status_code == 200
    finally:
        client.machines.delete(fleet, ticker, force=True)
