"""`machines list --json` to a pipe writes the server's answer as it came when it is already compact JSON on one
line (after checking it), instead of decoding and encoding 5,000 machines again; anything else is encoded as
before. Against the sandbox (whose stored documents are compact) and a loopback server that answers in other
shapes on purpose (tests/support/faultserver.py).
"""

from __future__ import annotations

import json

import httpx
import pytest
from support.cli import run_cli, run_main
from support.faultserver import Reply, cli_env_for

MACHINE = {"id": "m1", "fleet": "web", "state": "running", "config": {"image": "nginx", "guest": {"cpus": 1}},
           "name": "caf\u00e9 <b>"}
GUEST = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}


def compact(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def answer(fault_server, body: bytes) -> None:
    def handler(request):
        if (request.method, request.path) == ("GET", "/v1/fleets/web/machines"):
            return Reply(200, body=body, headers={"Content-Type": "application/json"})
        return Reply(404, json={"detail": "not found"})

    fault_server.handler = handler


def test_the_sandboxs_answer_is_written_as_it_came(fleet_env, sandbox):
    env, client, fleet = fleet_env
    for labels in ({"app": "web"}, {"app": "db"}, None):
        config = {"image": "nginx", "guest": GUEST, "workload": {"env": ["GREETING=h\u00e9llo \"you\" <b>"]}}
        client.machines.create(fleet, {"region": "gra-1", "config": config, "skip_start": True,
                                       **({"metadata": {"labels": labels}} if labels else {})})
    body = httpx.get(f"{sandbox.url}/fleets/{fleet}/machines",
                     headers={"Authorization": f"Bearer {sandbox.token}"}).content
    done = run_cli("machines", "list", "--json", env=env, text=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == body.rstrip() + b"\n"
    # the same bytes the encoder writes: the sandbox stores compact documents, as Ravel's Go encoder writes them
    assert done.stdout == compact(json.loads(body))
    assert len(json.loads(done.stdout)) == 3


def test_a_label_filter_is_encoded_from_what_is_left(fleet_env):
    env, client, fleet = fleet_env
    for app in ("web", "db"):
        client.machines.create(fleet, {"region": "gra-1", "config": {"image": "nginx", "guest": GUEST}, "skip_start": True,
                                       "metadata": {"labels": {"app": app}}})
    done = run_main(["machines", "list", "--json", "--label", "app=web"], env)
    assert done.code == 0, done.err
    machines = json.loads(done.out)
    assert [m["metadata"]["labels"]["app"] for m in machines] == ["web"]
    assert done.out.encode() == compact(machines)


@pytest.mark.parametrize("body", [
    json.dumps([MACHINE]).encode(),  # one line, Python's default separators
    json.dumps([MACHINE], indent=2).encode(),  # a pretty-printer's lines
    b"\xef\xbb\xbf" + compact([MACHINE]),  # a byte-order mark
    b"  " + compact([MACHINE]),  # whitespace first
], ids=["spaced", "indented", "bom", "leading-space"])
def test_any_other_answer_is_encoded_compact(fault_server, tmp_path, body):
    answer(fault_server, body)
    done = run_main(["machines", "list", "--json", "--fleet", "web"], cli_env_for(fault_server, tmp_path))
    assert done.code == 0, done.err
    assert done.out.encode() == compact([MACHINE])


def test_a_compact_answer_from_another_server_is_written_as_it_came(fault_server, tmp_path):
    # Go's encoder escapes <, > and & in strings: the same JSON value, kept as the server wrote it
    body = compact([MACHINE]).replace(b"<", b"\\u003c").replace(b">", b"\\u003e")
    answer(fault_server, body + b"\n")
    done = run_main(["machines", "list", "--json", "--fleet", "web"], cli_env_for(fault_server, tmp_path))
    assert done.code == 0, done.err
    assert done.out.encode() == body
    assert json.loads(done.out) == [MACHINE]


@pytest.mark.parametrize("body, expected", [
    (b"null", b"[]\n"),
    (b"[]", b"[]\n"),
])
def test_an_empty_answer(fault_server, tmp_path, body, expected):
    answer(fault_server, body)
    done = run_main(["machines", "list", "--json", "--fleet", "web"], cli_env_for(fault_server, tmp_path))
    assert done.code == 0, done.err
    assert done.out.encode() == expected


def test_a_malformed_answer_is_still_refused(fault_server, tmp_path):
    answer(fault_server, compact([{**MACHINE, "id": 7}]))
    done = run_main(["machines", "list", "--json", "--fleet", "web"], cli_env_for(fault_server, tmp_path))
    assert done.code == 1
    assert "unexpected answer from the server" in done.err and done.out == ""


def test_the_sandbox_compacts_documents_stored_before(tmp_path):
    """A sandbox data dir from before (configs stored with spaces) answers compact JSON once the server starts."""
    import sqlite3

    from support.sandbox import Sandbox

    sb = Sandbox(tmp_path / "data").start()
    try:
        with sb.client() as api:
            fleet = api.post("/fleets", json={"name": "old"}).json()["name"]
            mid = api.post(f"/fleets/{fleet}/machines", json={"region": "gra-1", "config": {"image": "nginx", "guest": GUEST}, "skip_start": True}).json()["id"]
    finally:
        sb.finish()
    db = sqlite3.connect(sb.data_dir / "state.db") if (sb.data_dir / "state.db").exists() else None
    if db is None:
        pytest.fail(f"no state.db in {sb.data_dir}: {sorted(p.name for p in sb.data_dir.iterdir())}")
    with db:
        db.execute("UPDATE machines SET config = ? WHERE id = ?", (json.dumps({"image": "nginx", "env": {"A": "1"}}), mid))
    db.close()
    sb = Sandbox(tmp_path / "data").start()
    try:
        with sb.client() as api:
            body = api.get(f"/fleets/{fleet}/machines").content
    finally:
        sb.finish()
    assert b'"config":{"image":"nginx","env":{"A":"1"}}' in body
    assert body.rstrip() + b"\n" == compact(json.loads(body))
