"""The sandbox under abuse (issue 17, items 5-8): what cannot be stored is refused, stored rows that cannot be sent
are repaired at start, bodies and exec output are bounded, logs are kept within a retention and removed with
their machine, and a full disk stops neither `stop` nor `delete --force`."""

from __future__ import annotations

import json
import sqlite3

from conftest import clean_environ
from helpers import machine_payload, run_cli
from test_local_server import name, problem


def _cli_env(sb, tmp_path) -> dict:
    env = clean_environ()
    env.update(VALYENT_CONFIG_DIR=str(tmp_path / "config"), VALYENT_API_URL=sb.url, VALYENT_API_TOKEN=sb.token,
               VALYENT_INITD_URL=sb.initd, NO_COLOR="1")
    return env


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
        payload["config"]["padding"] = "x" * (1024 * 1024)
        problem(api.post(f"/fleets/{fleet}/machines", json=payload), 413, "INVALID_ARGUMENT")

        def chunked():  # no Content-Length: the limit holds while reading
            body = json.dumps(payload).encode()
            for i in range(0, len(body), 65536):
                yield body[i:i + 65536]

        problem(api.post(f"/fleets/{fleet}/machines", content=chunked(), headers={"Content-Type": "application/json"}),
                413, "INVALID_ARGUMENT")
        payload["config"]["padding"] = "x" * 1000  # the same body, small: accepted
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
        r = api.post(f"/fleets/{fleet}/machines/{mid}/exec", json={"cmd": [sys.executable, "-c", code]}, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["exit_code"] == 0
        assert out["stdout"] == "o" * EXEC_OUTPUT_LIMIT
        assert out["stderr"] == ("e" * 10 + f"exec: stdout cut at {EXEC_OUTPUT_LIMIT} bytes by the sandbox; "
                                 f"{big - EXEC_OUTPUT_LIMIT} more bytes were dropped\n")
        small = api.post(f"/fleets/{fleet}/machines/{mid}/exec", json={"cmd": ["echo", "hi"]}).json()
        assert small["stdout"] == "hi\n" and small["stderr"] == ""
        done = run_cli("machines", "exec", mid, "--fleet", fleet, "--", sys.executable, "-c", code,
                       env=_cli_env(sandbox, tmp_path), text=False)
        assert done.returncode == 0 and len(done.stdout) == EXEC_OUTPUT_LIMIT
        assert b"stdout cut at" in done.stderr
        api.delete(f"/fleets/{fleet}/machines/{mid}", params={"force": "true"})
