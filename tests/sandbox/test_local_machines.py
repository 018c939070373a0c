"""Machines as processes in the sandbox: lifecycle and events, restart policies, auto_destroy, skip_start, stop
by signal, delete, wait, logs (JSON, NDJSON, live follow) and exec. Plain httpx against the contract."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
import time

import httpx
import pytest

from support.host import isolation_on
from support.util import machine_payload, wait_until


@pytest.fixture()
def fleet(api):
    f = api.post("/fleets", json={"name": f"m-{secrets.token_hex(4)}"}).json()
    yield f["name"]
    for m in api.get(f"/fleets/{f['id']}/machines").json():
        api.delete(f"/fleets/{f['id']}/machines/{m['id']}", params={"force": "true"})
    api.delete(f"/fleets/{f['id']}")


def create(api, fleet, *args, **kw) -> dict:
    r = api.post(f"/fleets/{fleet}/machines", json=machine_payload(*args, **kw))
    assert r.status_code == 201, r.text
    return r.json()


def path(fleet, m, suffix=""):
    return f"/fleets/{fleet}/machines/{m['id'] if isinstance(m, dict) else m}{suffix}"


def events(api, fleet, m) -> list[dict]:
    return api.get(path(fleet, m, "/events")).json()


def types(evs) -> list[str]:
    return [e["type"] for e in evs]


def state(api, fleet, m) -> str:
    return api.get(path(fleet, m)).json()["state"]


def wait(api, fleet, m, status, timeout=10):
    r = api.get(path(fleet, m, "/wait"), params={"status": status, "timeout": timeout}, timeout=timeout + 5)
    assert r.status_code == 200, r.text
    return r.json()


def exits(evs) -> list[int]:
    return [e["payload"]["stopped"]["exit_code"] for e in evs if e["type"] == "machine.exited"]


def test_lifecycle_events(api, fleet):
    m = create(api, fleet, ["sh", "-c", "exit 3"])
    wait(api, fleet, m, "stopped")
    evs = events(api, fleet, m)
    assert types(evs) == ["machine.created", "machine.prepare", "machine.prepared", "machine.start",
                          "machine.started", "machine.exited"]
    assert [e["status"] for e in evs] == ["created", "preparing", "preparing", "starting", "running", "stopped"]
    assert evs[0]["origin"] == "user" and all(e["origin"] == "ravel" for e in evs[1:])
    assert evs[3]["payload"] == {"start": {"is_restart": False}}
    assert evs[5]["payload"]["stopped"]["exit_code"] == 3 and evs[5]["payload"]["stopped"]["exited_at"]
    assert len({e["id"] for e in evs}) == len(evs)
    # start again by hand: origin user, no new prepare
    assert api.post(path(fleet, m, "/start")).status_code == 200
    wait(api, fleet, m, "stopped")
    evs = events(api, fleet, m)
    assert types(evs)[6:] == ["machine.start", "machine.started", "machine.exited"]
    assert evs[6]["origin"] == "user" and evs[6]["payload"] == {"start": {"is_restart": False}}


def test_skip_start_then_start_and_destroy(api, fleet):
    m = create(api, fleet, ["sleep", "30"], skip_start=True)
    assert m["state"] == "created" and types(m["events"]) == ["machine.created"]
    r = api.post(path(fleet, m, "/start"))
    assert r.status_code == 200 and r.json()["state"] == "running"
    assert types(events(api, fleet, m)) == ["machine.created", "machine.prepare", "machine.prepared",
                                            "machine.start", "machine.started"]
    r = api.post(path(fleet, m, "/start"))
    assert r.status_code == 400 and r.json()["Code"] == "FAILED_PRECONDITION"
    # a running machine is not deleted without force
    r = api.delete(path(fleet, m))
    assert r.status_code == 400 and r.json()["Code"] == "FAILED_PRECONDITION"
    r = api.delete(path(fleet, m), params={"force": "true"})
    assert r.status_code == 200 and r.json()["state"] == "destroyed"
    evs = events(api, fleet, m)
    assert types(evs)[-3:] == ["machine.destroy", "machine.exited", "machine.destroyed"]
    assert evs[-3]["origin"] == "user"
    assert evs[-3]["payload"] == {"destroy": {"auto_destroy": False, "reason": evs[-3]["payload"]["destroy"]["reason"],
                                              "force": True}}
    assert exits(evs) == [137]
    # destroyed: still readable by id and with ?destroyed=true, not in the default list
    assert api.get(path(fleet, m)).json()["state"] == "destroyed"
    assert m["id"] not in [x["id"] for x in api.get(f"/fleets/{fleet}/machines").json()]
    assert m["id"] in [x["id"] for x in api.get(f"/fleets/{fleet}/machines", params={"destroyed": "true"}).json()]
    for verb, suffix in (("post", "/start"), ("post", "/stop"), ("delete", "")):
        r = getattr(api, verb)(path(fleet, m, suffix))
        assert r.status_code == 400 and r.json()["Code"] == "FAILED_PRECONDITION"


def test_stop_by_signal_records_exit_code(api, fleet):
    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGUSR1, lambda *a: sys.exit(42))\n"
              "print('ready', flush=True)\n"
              "time.sleep(60)\n")
    m = create(api, fleet, ["-c", script], entrypoint=[sys.executable],
               stop_config={"signal": "SIGUSR1", "timeout": 10})
    wait_until(lambda: api.get(path(fleet, m, "/logs")).json(), message="the workload to be ready")
    r = api.post(path(fleet, m, "/stop"))
    assert r.status_code == 200
    wait(api, fleet, m, "stopped")
    evs = events(api, fleet, m)
    stop = [e for e in evs if e["type"] == "machine.stop"][0]
    assert stop["origin"] == "user" and stop["status"] == "stopping"
    assert stop["payload"] == {"stop": {"config": {"timeout": 10, "signal": "SIGUSR1"}}}
    assert exits(evs) == [42]
    r = api.post(path(fleet, m, "/stop"))
    assert r.status_code == 400 and r.json()["Code"] == "FAILED_PRECONDITION"


def test_stop_request_overrides_and_sigkill_after_timeout(api, fleet):
    # ignores SIGTERM: killed after the timeout given in the stop request
    m = create(api, fleet, ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.05; done"],
               stop_config={"timeout": 30})
    wait_until(lambda: api.get(path(fleet, m, "/logs")).json(), message="the workload to start")
    t0 = time.monotonic()
    assert api.post(path(fleet, m, "/stop"), json={"timeout": 1, "signal": "SIGTERM"}).status_code == 200
    wait(api, fleet, m, "stopped")
    assert 0.9 < time.monotonic() - t0 < 5
    assert exits(events(api, fleet, m)) == [137]
    r = api.post(path(fleet, m, "/stop"), json={"timeout": 99})
    assert r.status_code == 400


def test_default_stop_is_sigterm(api, fleet):
    m = create(api, fleet, ["sleep", "60"])
    api.post(path(fleet, m, "/stop"))
    wait(api, fleet, m, "stopped")
    evs = events(api, fleet, m)
    assert [e for e in evs if e["type"] == "machine.stop"][0]["payload"]["stop"]["config"] == {
        "timeout": 5, "signal": "SIGTERM"}
    assert exits(evs) == [143]


def test_children_die_with_the_machine(api, fleet, sandbox):
    m = create(api, fleet, ["sh", "-c", "sleep 300 & sleep 300 & wait"])
    wait_until(lambda: len([p for p in sandbox.machine_processes() if p[1] == m["id"]]) >= 3,
               message="the machine's processes")
    api.post(path(fleet, m, "/stop"))
    wait(api, fleet, m, "stopped")
    wait_until(lambda: not [p for p in sandbox.machine_processes() if p[1] == m["id"]],
               message="every process of the machine to be gone")


def test_restart_on_failure_with_max_retries(api, fleet, sandbox):
    m = create(api, fleet, ["sh", "-c", "echo run; exit 5"], restart={"policy": "on-failure", "max_retries": 2})
    wait_until(lambda: len(exits(events(api, fleet, m))) == 3 and state(api, fleet, m) == "stopped",
               message="three runs")
    assert not sandbox.restart_pending(m["id"])  # the third failure was the last run
    evs = events(api, fleet, m)
    assert exits(evs) == [5, 5, 5]
    starts = [e for e in evs if e["type"] == "machine.start"]
    assert [s["payload"]["start"]["is_restart"] for s in starts] == [False, True, True]
    assert all(s["origin"] == "ravel" for s in starts)
    assert [x["message"] for x in api.get(path(fleet, m, "/logs")).json()] == ["run"] * 3


def test_on_failure_does_not_restart_a_success(api, fleet, sandbox):
    m = create(api, fleet, ["true"], restart={"policy": "on-failure", "max_retries": 5})
    wait(api, fleet, m, "stopped")
    wait_until(lambda: exits(events(api, fleet, m)), message="the exit event")
    assert not sandbox.restart_pending(m["id"])
    assert exits(events(api, fleet, m)) == [0]


def test_restart_always_until_the_user_stops(api, fleet, sandbox):
    m = create(api, fleet, ["sh", "-c", "exit 0"], restart={"policy": "always"})
    wait_until(lambda: len(exits(events(api, fleet, m))) >= 3, message="three restarts")
    r = api.post(path(fleet, m, "/stop"))
    assert r.status_code in (200, 400)  # it may be between two runs or running
    wait(api, fleet, m, "stopped")
    # stopped by the user, whether while running or between two runs: no restart is coming
    assert not sandbox.restart_pending(m["id"]), "a restart is still coming after the user stopped it"
    assert state(api, fleet, m) == "stopped"


def test_never_policy_and_user_stop_of_always(api, fleet, sandbox):
    m = create(api, fleet, ["sleep", "60"], restart={"policy": "always"})
    api.post(path(fleet, m, "/stop"))
    wait(api, fleet, m, "stopped")
    wait_until(lambda: exits(events(api, fleet, m)), message="the exit event")
    assert not sandbox.restart_pending(m["id"])
    assert state(api, fleet, m) == "stopped" and exits(events(api, fleet, m)) == [143]


def test_auto_destroy(api, fleet):
    m = create(api, fleet, ["sh", "-c", "echo bye"], auto_destroy=True)
    # a machine already destroyed when the wait arrives is a 404, as on Ravel (ravel/server/endpoints/machines.go)
    r = api.get(path(fleet, m, "/wait"), params={"status": "destroyed", "timeout": 10}, timeout=15)
    assert r.status_code == 200 or (r.status_code == 404 and "machine not found" in r.text), r.text
    evs = events(api, fleet, m)
    assert types(evs)[-3:] == ["machine.exited", "machine.destroy", "machine.destroyed"]
    assert evs[-2]["origin"] == "ravel" and evs[-2]["payload"]["destroy"]["auto_destroy"] is True
    assert evs[-2]["payload"]["destroy"]["force"] is False


def test_start_failed_for_a_missing_executable(api, fleet):
    m = create(api, fleet, ["definitely-not-a-command-xyz"])
    assert m["state"] == "stopped"
    evs = events(api, fleet, m)
    assert types(evs)[-2:] == ["machine.start", "machine.start_failed"]
    assert "definitely-not-a-command-xyz" in evs[-1]["payload"]["start_failed"]["error"]


def test_idle_stand_in_without_a_command(api, fleet, sandbox):
    m = create(api, fleet, image="nginx:latest")
    assert m["state"] == "running"
    logs = api.get(path(fleet, m, "/logs")).json()
    assert len(logs) == 1 and "nginx:latest" in logs[0]["message"] and "idles" in logs[0]["message"]
    assert [p for p in sandbox.machine_processes() if p[1] == m["id"]]


def test_env_cwd_and_argv_without_shell(api, fleet, sandbox):
    m = create(api, fleet, ["-c", "import os,sys; print(os.getcwd()); print(os.environ['GREETING']); "
                              "print(os.environ['HOME']); print(sys.argv[1:])", "a b", "$HOME"],
               entrypoint=[sys.executable], env=["GREETING=hello world"])
    wait(api, fleet, m, "stopped")
    out = [x["message"] for x in api.get(path(fleet, m, "/logs")).json()]
    if isolation_on(sandbox.base):
        root = "/"  # the machine's own directory is its root
    else:
        root = str(sandbox.data_dir / "machines" / m["id"] / "root")
    assert os.path.realpath(out[0]) == os.path.realpath(root)
    assert out[1:] == ["hello world", root, "['a b', '$HOME']"]


def test_wait_long_poll_and_errors(api, fleet):
    m = create(api, fleet, ["sh", "-c", "sleep 0.7"])
    assert wait(api, fleet, m, "running") == {"ok": True, "state": "running"}
    t0 = time.monotonic()
    wait(api, fleet, m, "stopped", timeout=10)
    assert time.monotonic() - t0 < 3
    t0 = time.monotonic()
    r = api.get(path(fleet, m, "/wait"), params={"status": "destroyed", "timeout": 1})
    assert 0.9 < time.monotonic() - t0 < 3
    assert r.status_code == 408 and r.json()["Code"] == "DEADLINE_EXCEEDED"
    for params in ({"status": "starting", "timeout": 5}, {"status": "bogus", "timeout": 5},
                   {"status": "running"}):  # no timeout: Ravel's handler (ravel/server/endpoints/machines.go)
        r = api.get(path(fleet, m, "/wait"), params=params)
        assert r.status_code == 400 and r.json()["Code"] == "INVALID_ARGUMENT", params
    # huma v2.27.0 checks the query parameters first: `timeout` a uint from 1 to 60, `status` required
    for params, message in (({"status": "running", "timeout": 0}, "expected number >= 1"),
                            ({"status": "running", "timeout": 61}, "expected number <= 60"),
                            ({"status": "running", "timeout": "abc"}, "invalid integer"),
                            ({"status": "running", "timeout": "-1"}, "invalid integer"),
                            ({"timeout": 5}, "required query parameter is missing")):
        r = api.get(path(fleet, m, "/wait"), params=params)
        assert r.status_code == 422 and r.json()["errors"][0]["message"] == message, (params, r.text)


def test_wait_sees_a_short_lived_state(api, fleet):
    """A waiter for `stopped` is woken even when the machine restarts right away."""
    m = create(api, fleet, ["sleep", "0.5"], restart={"policy": "always"})
    wait(api, fleet, m, "stopped", timeout=5)
    api.post(path(fleet, m, "/stop"))


def test_logs_json_and_ndjson(api, fleet):
    m = create(api, fleet, ["sh", "-c", "echo out1; echo err1 >&2; printf 'no newline'"])
    wait(api, fleet, m, "stopped")
    # the last lines reach the log as the process's pipes are drained, around its exit: wait for them
    wait_until(lambda: len(api.get(path(fleet, m, "/logs")).json()) == 3, message="the three log lines")
    r = api.get(path(fleet, m, "/logs"))
    assert r.headers["content-type"].startswith("application/json")
    entries = r.json()
    assert sorted(e["message"] for e in entries) == ["err1", "no newline", "out1"]
    for e in entries:
        assert set(e) == {"timestamp", "instance_id", "source", "level", "message"}
        assert e["timestamp"] > 10**11 and e["instance_id"] == m["instance_id"]
        assert (e["source"], e["level"]) == (("stderr", "error") if e["message"] == "err1" else ("stdout", "info"))
    r = api.get(path(fleet, m, "/logs"), headers={"Accept": "application/x-ndjson"})
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in r.text.splitlines()] == entries


def test_logs_of_an_empty_machine(api, fleet):
    m = create(api, fleet, ["true"])
    wait(api, fleet, m, "stopped")
    assert api.get(path(fleet, m, "/logs")).json() == []
    assert api.get(path(fleet, m, "/logs"), headers={"Accept": "application/x-ndjson"}).text == ""


def test_live_follow_sees_lines_as_written(api, fleet, sandbox):
    m = create(api, fleet, ["sh", "-c", "echo first; read x < /dev/null; sleep 0.6; echo second; sleep 0.6; "
                                        "echo third; sleep 60"])
    seen: list[tuple[float, str]] = []
    done = threading.Event()

    def follow():
        with httpx.stream("GET", sandbox.url + path(fleet, m, "/logs"), params={"follow": "true"},
                          headers=sandbox.headers, timeout=30) as r:
            assert r.headers["content-type"].startswith("application/x-ndjson")
            for line in r.iter_lines():
                if line:
                    seen.append((time.monotonic(), json.loads(line)["message"]))
                if len(seen) == 3:
                    done.set()
                    return

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    assert done.wait(15), seen
    assert [s for _, s in seen] == ["first", "second", "third"]
    assert seen[1][0] - seen[0][0] > 0.3 and seen[2][0] - seen[1][0] > 0.3, "lines were not streamed live"
    t.join(5)


def test_follow_ends_when_the_machine_is_destroyed(api, fleet, sandbox):
    m = create(api, fleet, ["sh", "-c", "echo hi; sleep 60"])
    result: dict = {"lines": []}
    following = threading.Event()

    def follow():
        with httpx.stream("GET", sandbox.url + path(fleet, m, "/logs"), params={"follow": "true"},
                          headers=sandbox.headers, timeout=30) as r:
            for line in r.iter_lines():
                if line:
                    result["lines"].append(line)
                    following.set()  # the stream is open and has replayed the first line

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    assert following.wait(15), "the follow stream never delivered the first line"
    api.delete(path(fleet, m), params={"force": "true"})
    t.join(10)
    assert not t.is_alive() and len(result["lines"]) == 1


def test_big_log_streams_fast(api, fleet, sandbox):
    m = create(api, fleet, ["seq", "200000"])
    wait(api, fleet, m, "stopped", timeout=30)
    t0 = time.monotonic()
    n = 0
    with httpx.stream("GET", sandbox.url + path(fleet, m, "/logs"), headers={
            **sandbox.headers, "Accept": "application/x-ndjson"}, timeout=30) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            n += 1
            last = line
    elapsed = time.monotonic() - t0
    assert n == 200000 and json.loads(last)["message"] == "200000"
    assert elapsed < 5, elapsed
    t0 = time.monotonic()
    entries = api.get(path(fleet, m, "/logs")).json()
    assert len(entries) == 200000 and entries[0]["message"] == "1"
    assert time.monotonic() - t0 < 5


def test_exec(api, fleet, sandbox):
    m = create(api, fleet, ["sleep", "60"], env=["WHO=machine"])
    r = api.post(path(fleet, m, "/exec"), json={"cmd": ["sh", "-c", "echo $WHO; pwd; echo oops >&2; exit 3"],
                                                "timeout_ms": 5000})
    assert r.status_code == 200
    body = r.json()
    isolated = isolation_on(sandbox.base)
    root = "/" if isolated else str(sandbox.data_dir / "machines" / m["id"] / "root")
    assert body == {"stdout": f"machine\n{root}\n", "stderr": "oops\n", "exit_code": 3}
    r = api.post(path(fleet, m, "/exec"), json={"cmd": ["no-such-binary-here"], "timeout_ms": 5000}).json()
    assert r["exit_code"] == 127 and "not found" in r["stderr"]
    t0 = time.monotonic()
    r = api.post(path(fleet, m, "/exec"), json={"cmd": ["sh", "-c", "echo start; sleep 30"], "timeout_ms": 300})
    assert time.monotonic() - t0 < 3
    assert r.json()["exit_code"] == 124 and r.json()["stdout"] == "start\n"
    for bad in ({"cmd": [], "timeout_ms": 1000}, {"cmd": "ls", "timeout_ms": 1000}, {"cmd": ["ls"], "timeout_ms": -5}):
        r = api.post(path(fleet, m, "/exec"), json=bad)
        assert r.status_code == 400 and r.json()["Code"] == "INVALID_ARGUMENT", bad
    for bad in ({"cmd": ["ls"]}, {}):  # timeout_ms is required (api/machines.go ExecOptions): huma's 422
        r = api.post(path(fleet, m, "/exec"), json=bad)
        assert r.status_code == 422 and r.json()["Code"] == "UNKNOWN", bad
    api.post(path(fleet, m, "/stop"), json={"timeout": 0})
    wait(api, fleet, m, "stopped")
    r = api.post(path(fleet, m, "/exec"), json={"cmd": ["true"], "timeout_ms": 1000})
    assert r.status_code == 400 and r.json()["Code"] == "FAILED_PRECONDITION"


def test_many_idle_machines_are_cheap(api, fleet, sandbox):
    t0 = time.monotonic()
    ids = [create(api, fleet)["id"] for _ in range(40)]
    elapsed = time.monotonic() - t0
    assert elapsed < 10, elapsed
    listed = api.get(f"/fleets/{fleet}/machines").json()
    assert {m["id"] for m in listed} == set(ids) and all(m["state"] == "running" for m in listed)
