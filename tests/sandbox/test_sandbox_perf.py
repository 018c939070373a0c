"""The sandbox's fast paths give exactly what the plain ones give: a fleet's machine list is built as text from the
stored JSON (never decoded and re-encoded) and a log's history is encoded by SQLite in batches of 20,000 entries,
in worker threads. Speed is measured by benchmarks/run.py; these check the answers."""

from __future__ import annotations

import json
import sys
import time

from support.util import machine_payload, name


def _wait_lines(api, path: str, n: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        r = api.get(path, headers={"Accept": "application/x-ndjson"})
        assert r.status_code == 200, r.text
        lines = r.text.splitlines()
        if len(lines) >= n or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.2)


def test_machine_list_is_each_machine_as_get_gives_it(sandbox):
    with sandbox.client() as api:
        fleet = api.post("/fleets", json={"name": name("perf")}).json()["id"]
        # odd text in the fields a Ravel body has (an unknown key is huma's 422 now: issue 23 item 15)
        odd = {"image": 'img:"quoted"\\back\tslash é 雪 \u2028',
               "workload": {"env": ['NOTE=é 雪 \u2028 "q"\\'], "init": {"cmd": ["x", "", "\u00a0"]}},
               "stop_config": {"timeout": 30}}
        made = []
        for i in range(4):
            payload = machine_payload(skip_start=True)
            payload["config"].update(odd if i % 2 else {"image": f"plain:{i}"})
            r = api.post(f"/fleets/{fleet}/machines", json=payload)
            assert r.status_code == 201, r.text
            made.append(r.json()["id"])
        api.post(f"/fleets/{fleet}/machines/{made[0]}/start")
        api.delete(f"/fleets/{fleet}/machines/{made[1]}", params={"force": "true"})

        listed = api.get(f"/fleets/{fleet}/machines")
        assert listed.headers["content-type"] == "application/json"
        everything = api.get(f"/fleets/{fleet}/machines", params={"destroyed": "true"}).json()
        assert [m["id"] for m in listed.json()] == sorted(set(made) - {made[1]})
        assert [m["id"] for m in everything] == sorted(made)
        for machine in everything:
            one = api.get(f"/fleets/{fleet}/machines/{machine['id']}").json()
            assert machine == one  # every field, the events and their payloads included
        assert everything[[m["id"] for m in everything].index(made[3])]["config"]["image"] == odd["image"]
        assert api.get(f"/fleets/{name('nope')}/machines").status_code == 404
        empty = api.post("/fleets", json={"name": name("empty")}).json()["id"]
        assert api.get(f"/fleets/{empty}/machines").json() == []
        for mid in made:
            api.delete(f"/fleets/{fleet}/machines/{mid}", params={"force": "true"})


def test_a_long_history_comes_whole_and_in_order_in_both_forms(sandbox):
    n = 45_000  # more than two of the server's batches of 20,000
    code = ("import sys; sys.stdout.write(''.join(f'{i} \"q\" \\\\ \\t é\\n' for i in range(%d))); "
            "sys.stdout.flush(); import time; time.sleep(600)" % n)
    with sandbox.client() as api:
        fleet = api.post("/fleets", json={"name": name("perflog")}).json()["id"]
        mid = api.post(f"/fleets/{fleet}/machines", json=machine_payload([sys.executable, "-c", code])).json()["id"]
        path = f"/fleets/{fleet}/machines/{mid}/logs"
        try:
            entries = _wait_lines(api, path, n)
            messages = [e["message"] for e in entries]
            assert messages == [f'{i} "q" \\ \t é' for i in range(n)]
            assert {e["source"] for e in entries} == {"stdout"} and all(isinstance(e["timestamp"], int) for e in entries)
            assert set(entries[0]) == {"timestamp", "instance_id", "source", "level", "message"}
            as_array = api.get(path).json()  # the JSON array form of the same history
            assert as_array == entries
        finally:
            api.delete(f"/fleets/{fleet}/machines/{mid}", params={"force": "true"})
