"""The sandbox across restarts: state survives, a graceful stop stops machines, and after `kill -9` of the
server no machine process is left behind and the next server reconciles the database."""

from __future__ import annotations

import time

import httpx

from support.host import isolation_on
from support.util import machine_payload, wait_until


def _create(api, *args, **kw):
    r = api.post("/fleets/default/machines", json=machine_payload(*args, **kw))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _get(api, mid):
    return api.get(f"/fleets/default/machines/{mid}").json()


def _events(api, mid):
    return api.get(f"/fleets/default/machines/{mid}/events").json()


def _pids(sb, mid):
    return {pid for pid, m in sb.machine_processes() if m == mid}


def test_graceful_restart_keeps_state_and_applies_policies(fresh_sandbox):
    sb = fresh_sandbox
    with sb.client() as api:
        api.post("/fleets", json={"name": "keep"})
        api.post("/fleets/keep/gateways", json={"name": "web", "target_port": 8080})
        always = _create(api, ["sh", "-c", "echo up; sleep 600"], restart={"policy": "always"})
        never = _create(api, ["sleep", "600"])
        created = _create(api, ["true"], skip_start=True)
        wait_until(lambda: api.get(f"/fleets/default/machines/{always}/logs").json(), message="first log line")
        token = sb.token
    status = sb.stop()
    assert status == 0
    assert not sb.machine_processes()
    sb.start()
    assert sb.token == token
    with sb.client() as api:
        assert [f["name"] for f in api.get("/fleets").json()] == ["default", "keep"]
        assert api.get("/fleets/keep/gateways").json()[0]["target_port"] == 8080
        # the shutdown stopped both, with an exited event; `always` came back, `never` stays stopped
        assert wait_until(lambda: _get(api, always)["state"] == "running", message="always to be restarted")
        assert _get(api, never)["state"] == "stopped"
        assert _get(api, created)["state"] == "created"
        types = [e["type"] for e in _events(api, always)]
        assert types[-3:] == ["machine.exited", "machine.start", "machine.started"]
        exited = [e for e in _events(api, never) if e["type"] == "machine.exited"]
        assert [e["payload"]["stopped"]["exit_code"] for e in exited] == [143]
        logs = [x["message"] for x in api.get(f"/fleets/default/machines/{always}/logs").json()]
        assert logs[:1] == ["up"]
        wait_until(lambda: len(api.get(f"/fleets/default/machines/{always}/logs").json()) == 2,
                   message="the restarted machine's log line")


def test_kill9_leaves_no_orphans_and_reconciles(fresh_sandbox):
    sb = fresh_sandbox
    with sb.client() as api:
        # a child that is not the process group leader survives its parent's death unless someone cleans up
        always = _create(api, ["sh", "-c", "sleep 600 & echo started; wait"], restart={"policy": "always"})
        never = _create(api, ["sh", "-c", "sleep 600 & wait"])
        # an isolated machine adds its launcher and its init (PID 1 of its namespace) to the shell and the sleep
        n = 4 if isolation_on(sb.base) else 2
        wait_until(lambda: len(_pids(sb, always)) == n and len(_pids(sb, never)) == n, message="machine processes")
        before = _pids(sb, always) | _pids(sb, never)
    sb.kill9()
    # the direct children (the shells) die with the server, by their parent-death signal; what they started
    # in the background is left to the next server
    wait_until(lambda: len(_pids(sb, always)) <= 1 and len(_pids(sb, never)) <= 1, timeout=3,
               message="the machines' main processes to die with the server")
    sb.start()
    with sb.client() as api:
        # nothing of the previous server survives: its survivors are found by their marker and killed
        wait_until(lambda: not (before & {pid for pid, _ in sb.machine_processes()}),
                   message="the old machine processes to be gone")
        m = _get(api, never)
        assert m["state"] == "stopped"
        evs = _events(api, never)
        assert evs[-1]["type"] == "machine.exited" and evs[-1]["payload"]["stopped"]["exit_code"] == 137
        wait_until(lambda: _get(api, always)["state"] == "running", message="`always` to be restarted")
        evs = _events(api, always)
        types = [e["type"] for e in evs]
        assert types[-3:] == ["machine.exited", "machine.start", "machine.started"]
        assert evs[-2]["payload"] == {"start": {"is_restart": True}} and evs[-2]["origin"] == "ravel"
        wait_until(lambda: len(_pids(sb, always)) == n, message="the restarted machine's processes")
        assert not _pids(sb, always) & before
        # the store is consistent and usable
        assert api.post(f"/fleets/default/machines/{never}/start").status_code == 200
        assert api.delete(f"/fleets/default/machines/{never}", params={"force": "true"}).json()["state"] == "destroyed"


def test_kill9_while_stopping_and_destroying(fresh_sandbox):
    sb = fresh_sandbox
    with sb.client() as api:
        stubborn = _create(api, ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.1; done"],
                           restart={"policy": "always"}, stop_config={"timeout": 30})
        wait_until(lambda: api.get(f"/fleets/default/machines/{stubborn}/logs").json(), message="log line")
        api.post(f"/fleets/default/machines/{stubborn}/stop")
        assert _get(api, stubborn)["state"] == "stopping"
    sb.kill9()
    sb.start()  # it reconciles before it serves
    with sb.client() as api:
        # the user asked for a stop: it is stopped, and not restarted despite `always` (none is coming)
        assert not sb.restart_pending(stubborn)
        assert _get(api, stubborn)["state"] == "stopped"
        assert _events(api, stubborn)[-1]["type"] == "machine.exited"
    assert not _pids(sb, stubborn)


def test_auto_destroy_machines_after_a_crash(fresh_sandbox):
    sb = fresh_sandbox
    with sb.client() as api:
        mid = _create(api, ["sleep", "600"], auto_destroy=True)
    sb.kill9()
    sb.start()
    with sb.client() as api:
        r = api.get(f"/fleets/default/machines/{mid}/wait", params={"status": "destroyed", "timeout": 10})
        # 404 once it is destroyed, as Ravel's wait (which reads no destroyed machine) answers
        assert r.status_code == 200 or (r.status_code == 404 and
                                        api.get(f"/fleets/default/machines/{mid}").json()["state"] == "destroyed")
        assert [e["type"] for e in _events(api, mid)][-3:] == ["machine.exited", "machine.destroy",
                                                               "machine.destroyed"]
