"""Ravel's API in the sandbox (issue 12 item 3), over real HTTP: namespaces, secrets, labels and annotations, health
checks, volumes, private networks, versions, nodes, the routes at the root, and Ravel's limits and error JSON."""

from __future__ import annotations

import os
import stat
import uuid

import httpx
import pytest

from support.util import machine_payload, name, problem, wait_until


@pytest.fixture()
def root_api(sandbox):
    """The same server without /v1, as a stock Ravel serves it."""
    with httpx.Client(base_url=sandbox.base, headers=sandbox.headers, timeout=30) as client:
        yield client


def create(api, payload: dict, fleet: str = "default") -> dict:
    r = api.post(f"/fleets/{fleet}/machines", json=payload)
    assert r.status_code in (200, 201), r.text
    return r.json()


def exec_(api, mid: str, *cmd: str, fleet: str = "default") -> dict:
    r = api.post(f"/fleets/{fleet}/machines/{mid}/exec", json={"cmd": list(cmd), "timeout_ms": 10_000})
    assert r.status_code == 200, r.text
    return r.json()


def destroy(api, mid: str, fleet: str = "default") -> None:
    assert api.delete(f"/fleets/{fleet}/machines/{mid}", params={"force": "true"}).status_code == 200


def test_the_same_handlers_answer_at_the_root(api, root_api):
    assert root_api.get("/fleets").json() == api.get("/fleets").json()
    assert root_api.get("/nodes").json()[0]["id"] == api.get("/nodes").json()[0]["id"]
    problem(root_api.get("/fleets/no-such-fleet"), 404, "NOT_FOUND")


def test_namespaces(api):
    ns = name("ns")
    r = api.post("/namespaces", json={"name": ns})
    assert r.status_code == 200 and r.json()["name"] == ns and r.json()["created_at"]
    problem(api.post("/namespaces", json={"name": ns}), 409, "ALREADY_EXISTS")
    assert ns in [n["name"] for n in api.get("/namespaces").json()]
    assert "default" in [n["name"] for n in api.get("/namespaces").json()]  # the sandbox's own
    assert api.get(f"/namespaces/{ns}").json()["name"] == ns
    problem(api.get("/namespaces/no-such-ns"), 404, "NOT_FOUND")
    problem(api.get("/namespaces/no-such-ns/secrets"), 404, "NOT_FOUND")
    # a fleet in it, then the namespace cannot go until the fleet does
    api.post("/fleets", json={"name": "in-ns"}, params={"namespace": ns})
    problem(api.delete(f"/namespaces/{ns}"), 400, "FAILED_PRECONDITION")
    assert api.delete("/fleets/in-ns", params={"namespace": ns}).status_code == 200
    assert api.delete(f"/namespaces/{ns}").status_code == 204
    problem(api.get(f"/namespaces/{ns}"), 404)


def test_secrets_are_resolved_into_the_environment_and_never_returned(api, sandbox):
    sname, value = name("db-password"), "s3cr3t-" + uuid.uuid4().hex
    r = api.post("/namespaces/default/secrets", json={"name": sname, "value": value})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"id", "name", "namespace", "created_at", "updated_at"}
    problem(api.post("/namespaces/default/secrets", json={"name": sname, "value": "x"}), 409, "ALREADY_EXISTS")
    problem(api.post("/namespaces/default/secrets", json={"name": "Not_A_DNS_Label", "value": "x"}), 422)
    problem(api.post("/namespaces/default/secrets", json={"name": name("empty"), "value": ""}), 422)

    payload = machine_payload(["sleep", "600"])
    payload["config"]["workload"]["secrets"] = [{"name": sname, "env_var": "DB_PASSWORD"}]
    m = create(api, payload)
    wait_until(lambda: api.get(f"/fleets/default/machines/{m['id']}").json()["state"] == "running")
    assert exec_(api, m["id"], "printenv", "DB_PASSWORD")["stdout"] == value + "\n"
    # never in an answer: not the machine, its list, its versions, its events, nor the secret itself
    for path in (f"/fleets/default/machines/{m['id']}", "/fleets/default/machines",
                 f"/fleets/default/machines/{m['id']}/versions", f"/fleets/default/machines/{m['id']}/events",
                 "/namespaces/default/secrets", f"/namespaces/default/secrets/{sname}"):
        assert value not in api.get(path).text, path
    # resolved at create, as Ravel does: a new value reaches new machines only
    new_value = "n3w-" + uuid.uuid4().hex
    assert api.patch(f"/namespaces/default/secrets/{sname}", json={"value": new_value}).status_code == 200
    assert exec_(api, m["id"], "printenv", "DB_PASSWORD")["stdout"] == value + "\n"
    destroy(api, m["id"])
    # a machine that names a missing secret is refused
    payload["config"]["workload"]["secrets"] = [{"name": name("missing"), "env_var": "X"}]
    assert "Secret not found" in problem(api.post("/fleets/default/machines", json=payload), 400)["detail"]
    assert api.delete(f"/namespaces/default/secrets/{sname}").status_code == 204
    problem(api.get(f"/namespaces/default/secrets/{sname}"), 404)
    # the database holding the values is the owner's only
    assert stat.S_IMODE(os.stat(sandbox.data_dir / "state.db").st_mode) == 0o600


def test_labels_filter_and_metadata_updates(api):
    fleet = name("lab")
    r = api.post("/fleets", json={"name": fleet, "metadata": {"labels": {"team": "a"}, "annotations": {"n": "x"}}})
    assert r.json()["metadata"] == {"labels": {"team": "a"}, "annotations": {"n": "x"}}
    assert fleet in [f["name"] for f in api.get("/fleets", params={"labels[team]": "a"}).json()]
    assert fleet not in [f["name"] for f in api.get("/fleets", params={"labels[team]": "b"}).json()]
    r = api.patch(f"/fleets/{fleet}/metadata", json={"metadata": {"labels": {"team": "b"}}})
    assert r.status_code == 200 and r.json()["metadata"] == {"labels": {"team": "b"}}

    web = {**machine_payload(skip_start=True), "metadata": {"labels": {"role": "web"}}}
    db = {**machine_payload(skip_start=True), "metadata": {"labels": {"role": "db"}}}
    w, d = create(api, web, fleet), create(api, db, fleet)
    assert w["metadata"] == {"labels": {"role": "web"}}
    listed = api.get(f"/fleets/{fleet}/machines", params={"labels[role]": "web"}).json()
    assert [m["id"] for m in listed] == [w["id"]]
    r = api.patch(f"/fleets/{fleet}/machines/{d['id']}/metadata",
                  json={"metadata": {"labels": {"role": "web"}, "annotations": {"why": "moved"}}})
    assert r.status_code == 200 and r.json()["metadata"]["annotations"] == {"why": "moved"}
    listed = api.get(f"/fleets/{fleet}/machines", params={"labels[role]": "web"}).json()
    assert sorted(m["id"] for m in listed) == sorted([w["id"], d["id"]])
    for m in (w, d):
        destroy(api, m["id"], fleet)


@pytest.mark.parametrize("metadata, message", [
    ({"labels": {f"k{i}": "v" for i in range(65)}}, "too many labels: maximum 64 allowed, got 65"),
    ({"annotations": {f"k{i}": "v" for i in range(33)}}, "too many annotations: maximum 32 allowed, got 33"),
    ({"labels": {"k" * 64: "v"}}, "label key exceeds maximum length: 63 characters allowed, got 64"),
    ({"labels": {"k": "v" * 256}}, "label value exceeds maximum length: 255 characters allowed, got 256"),
    ({"labels": {"ravel.owner": "v"}}, "label key uses reserved prefix 'ravel.'"),
    ({"annotations": {"a": "v" * 65537}}, "annotation value exceeds maximum length: 65536 characters allowed"),
])
def test_metadata_limits_are_ravels(api, metadata, message):
    body = problem(api.post("/fleets", json={"name": name("lim"), "metadata": metadata}), 400, "INVALID_ARGUMENT")
    assert body["detail"].startswith(message)
    assert body["errors"][0]["location"].startswith("metadata.")
    body = problem(api.post("/fleets/default/machines", json={**machine_payload(skip_start=True),
                                                              "metadata": metadata}), 400, "INVALID_ARGUMENT")
    assert body["detail"].startswith(message)


def test_health_goes_unhealthy_then_healthy_when_the_checked_file_appears(api):
    payload = machine_payload(["sleep", "600"])
    payload["config"]["workload"]["health_check"] = {"exec": ["test", "-e", "/ready"], "interval": 1,
                                                      "timeout": 2, "retries": 2}
    m = create(api, payload)
    assert m["health"] == "starting"
    get = lambda: api.get(f"/fleets/default/machines/{m['id']}").json()  # noqa: E731
    wait_until(lambda: get()["health"] == "unhealthy", timeout=20, message="unhealthy")
    exec_(api, m["id"], "touch", "/ready")
    wait_until(lambda: get()["health"] == "healthy", timeout=20, message="healthy")
    events = [e for e in api.get(f"/fleets/default/machines/{m['id']}/events").json() if e["type"] == "machine.health"]
    # an event on each change, and on each failure before unhealthy (with the check's output: the sandbox's addition)
    assert [e["payload"]["health"]["status"] for e in events] == ["starting", "unhealthy", "healthy"]
    # unhealthy on exactly the `retries`-th failure in a row, not one check late (issue 28 item 8)
    assert [e["payload"]["health"]["consecutive_failures"] for e in events] == [1, 2, 0]
    assert all("output" in e["payload"]["health"] for e in events)
    assert all(e["status"] == "running" for e in events)
    destroy(api, m["id"])


def test_a_volume_outlives_its_machine(api, sandbox):
    vol = name("data")
    payload = machine_payload(["sleep", "600"])
    payload["config"]["workload"]["volumes"] = [{"name": vol, "path": "/var/lib/app"}]
    first = create(api, payload)
    wait_until(lambda: api.get(f"/fleets/default/machines/{first['id']}").json()["state"] == "running")
    assert exec_(api, first["id"], "sh", "-c", "echo kept > /var/lib/app/file.txt")["exit_code"] == 0
    destroy(api, first["id"])
    second = create(api, payload)
    wait_until(lambda: api.get(f"/fleets/default/machines/{second['id']}").json()["state"] == "running")
    assert exec_(api, second["id"], "cat", "/var/lib/app/file.txt")["stdout"] == "kept\n"
    # the fs API sees the volume where the machine does
    with sandbox.initd_client(second["id"]) as initd:
        assert initd.get("/fs/read", params={"path": "/var/lib/app/file.txt"}).content == b"kept\n"
        entry = initd.get("/fs/stat", params={"path": "/var/lib/app"}).json()
        assert entry["path"] == "/var/lib/app" and entry["name"] == "app" and entry["is_dir"]
        assert [e["path"] for e in initd.get("/fs/ls", params={"path": "/var/lib/app"}).json()] == [
            "/var/lib/app/file.txt"]
        problem(initd.post("/fs/rm", params={"path": "/var/lib/app"}), 400)
        problem(initd.post("/fs/mkdir", json={"dir": "/usr/new"}), 400)
    destroy(api, second["id"])


@pytest.mark.parametrize("workload, message", [
    ({"volumes": [{"name": "a", "path": "relative"}]}, "Volume path must be absolute: relative"),
    ({"volumes": [{"name": "../up", "path": "/x"}]}, "invalid volume name '../up'"),
    ({"volumes": [{"name": "a", "path": "/x/../.."}]}, "Volume path '/x/../..' must name a directory below /"),
    ({"volumes": [{"name": "a", "path": "/x"}, {"name": "a", "path": "/y"}]}, "Duplicate volume name: a"),
    ({"volumes": [{"name": "a", "path": "/x"}, {"name": "b", "path": "/x"}]}, "Duplicate volume path: /x"),
    ({"volumes": [{"name": f"v{i}", "path": f"/v{i}"} for i in range(11)]}, "Too many volumes: maximum 10 allowed"),
    ({"private_networks": [{"name": "n", "ip": "10.0.1.2"}]}, "Private network IP must be in CIDR notation"),
    ({"private_networks": [{"name": "n", "ip": "10.0.1.2/24"}, {"name": "n", "ip": "10.0.1.3/24"}]},
     "Duplicate private network name: n"),
    ({"health_check": {"exec": []}}, "health_check.exec must be a non-empty array"),
])
def test_workload_validation_is_ravels(api, workload, message):
    payload = machine_payload(skip_start=True)
    payload["config"]["workload"] = workload
    body = problem(api.post("/fleets/default/machines", json=payload), 400, "INVALID_ARGUMENT")
    assert body["detail"].startswith(message)


def test_private_networks_are_recorded_versions_and_nodes(api):
    payload = machine_payload(skip_start=True)
    payload["config"]["workload"] = {"private_networks": [{"name": "backend", "ip": "10.0.1.2/24"}]}
    m = create(api, payload)
    assert m["config"]["workload"]["private_networks"] == [{"name": "backend", "ip": "10.0.1.2/24"}]
    versions = api.get(f"/fleets/default/machines/{m['id']}/versions").json()
    assert len(versions) == 1
    v = versions[0]
    assert v["id"] == m["machine_version"] and v["machine_id"] == m["id"] and v["namespace"] == "default"
    assert v["config"] == payload["config"] and v["resources"] == {"cpus_mhz": 1000, "memory_mb": 256}
    nodes = api.get("/nodes").json()
    assert len(nodes) == 1 and {"id", "address", "agent_port", "region", "heartbeated_at"} <= set(nodes[0])
    destroy(api, m["id"])
