"""The sandbox's control plane against the contract, with plain httpx: auth, fleets, gateways, machine
validation and shapes, namespaces, errors."""

from __future__ import annotations

import re

import httpx
import pytest

from support.host import cannot_isolate, expected_isolation
from support.util import machine_payload, name, problem, wait_until

ULID = re.compile(r"^[0-9a-hjkmnp-tv-z]{26}$")
@pytest.fixture()
def fleet(api):
    f = api.post("/fleets", json={"name": name("fleet")}).json()
    yield f
    for m in api.get(f"/fleets/{f['id']}/machines").json():
        api.delete(f"/fleets/{f['id']}/machines/{m['id']}", params={"force": "true"})
    api.delete(f"/fleets/{f['id']}")


def test_healthz_needs_no_token(sandbox):
    r = httpx.get(sandbox.base + "/healthz")
    assert r.status_code == 200 and r.json()["ok"] is True
    # not "either": isolation is on wherever util-linux can make the namespaces (always in CI), off elsewhere
    assert r.json()["isolation"] == expected_isolation(), cannot_isolate()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "token x"}])
@pytest.mark.parametrize("path", ["/v1/fleets", "/v1/fleets/default/machines", "/initd/whatever/status", "/v1/nope"])
def test_401_without_the_token(sandbox, headers, path):
    r = httpx.get(sandbox.base + path, headers=headers)
    assert r.status_code == 401
    assert r.json() == {"errors": [{"message": "Unauthorized access"}]}


def test_default_fleet_exists(api):
    fleets = api.get("/fleets").json()
    default = [f for f in fleets if f["name"] == "default"]
    assert len(default) == 1
    f = default[0]
    assert set(f) == {"id", "namespace", "name", "created_at", "status"}
    assert f["namespace"] == "default" and f["status"] == "active"
    assert f["id"].startswith("fleet_") and ULID.match(f["id"][6:])


def test_fleet_crud(api):
    n = name()
    r = api.post("/fleets", json={"name": n})
    assert r.status_code == 201
    f = r.json()
    assert f["name"] == n and f["namespace"] == "default" and f["status"] == "active"
    assert api.get(f"/fleets/{n}").json() == f
    assert api.get(f"/fleets/{f['id']}").json() == f
    assert f in api.get("/fleets").json()
    problem(api.post("/fleets", json={"name": n}), 409, "ALREADY_EXISTS")
    assert api.delete(f"/fleets/{n}").status_code == 200
    problem(api.get(f"/fleets/{n}"), 404, "NOT_FOUND")
    assert f["id"] not in [x["id"] for x in api.get("/fleets").json()]
    # the name is free again
    assert api.post("/fleets", json={"name": n}).status_code == 201
    api.delete(f"/fleets/{n}")


@pytest.mark.parametrize("bad", ["", "-a", "a-", "a_b", "a b", "é", "x" * 64, None, 5])
def test_fleet_name_rules(api, bad):
    body = problem(api.post("/fleets", json={"name": bad}), 400, "INVALID_ARGUMENT")
    assert body["errors"][0]["location"] == "body.name"


@pytest.mark.parametrize("good", ["a", "A-1", "x" * 63, "0-0"])
def test_fleet_name_accepted(api, good):
    r = api.post("/fleets", json={"name": good}, params={"namespace": name("ns")})
    assert r.status_code == 201, r.text


def test_bad_json_and_unknown_route(api):
    problem(api.post("/fleets", content=b"{nope", headers={"Content-Type": "application/json"}), 400,
            "INVALID_ARGUMENT")
    problem(api.post("/fleets", json=[1]), 400, "INVALID_ARGUMENT")
    problem(api.get("/nothing/here"), 404, "NOT_FOUND")
    problem(api.get("/fleets/no-such-fleet/machines"), 404, "NOT_FOUND")


def test_namespaces_scope_everything(api):
    ns1, ns2 = name("ns"), name("ns")
    f1 = api.post("/fleets", json={"name": "shared"}, params={"namespace": ns1}).json()
    f2 = api.post("/fleets", json={"name": "shared"}, params={"namespace": ns2}).json()
    assert f1["namespace"] == ns1 and f2["namespace"] == ns2 and f1["id"] != f2["id"]
    assert [f["id"] for f in api.get("/fleets", params={"namespace": ns1}).json()] == [f1["id"]]
    problem(api.get(f"/fleets/{f1['id']}", params={"namespace": ns2}), 404, "NOT_FOUND")
    problem(api.get(f"/fleets/{f1['id']}"), 404, "NOT_FOUND")  # no namespace = "default"
    m = api.post("/fleets/shared/machines", json=machine_payload(skip_start=True), params={"namespace": ns1}).json()
    assert m["namespace"] == ns1
    problem(api.get(f"/fleets/shared/machines/{m['id']}", params={"namespace": ns2}), 404, "NOT_FOUND")
    assert api.get(f"/fleets/shared/machines/{m['id']}", params={"namespace": ns1}).status_code == 200
    gw = api.post("/fleets/shared/gateways", json={"name": "web", "target_port": 80}, params={"namespace": ns2})
    assert gw.json()["namespace"] == ns2
    assert api.get("/fleets/shared/gateways", params={"namespace": ns1}).json() == []


def test_gateways(api, fleet):
    base = f"/fleets/{fleet['name']}/gateways"
    r = api.post(base, json={"name": "web", "target_port": 8080})
    assert r.status_code == 201
    gw = r.json()
    # the contract's keys, plus the sandbox's loopback url (docs/sandbox.md)
    assert set(gw) == {"id", "name", "namespace", "fleet_id", "protocol", "target_port", "url"}
    assert gw["url"].startswith("http://127.0.0.1:")
    assert gw["id"].startswith("gw_") and gw["fleet_id"] == fleet["id"]
    assert gw["protocol"] == "http" and gw["url"].startswith("http://")  # as it answers (Ravel's edge: https)
    assert gw["target_port"] == 8080 and gw["namespace"] == "default"
    assert api.get(base).json() == [gw]
    assert api.get(f"{base}/{gw['id']}").json() == gw
    assert api.get(f"{base}/web").json() == gw
    problem(api.post(base, json={"name": "web", "target_port": 81}), 409, "ALREADY_EXISTS")
    for port in (0, 65536, -1, "80", None, True):
        problem(api.post(base, json={"name": "other", "target_port": port}), 400, "INVALID_ARGUMENT")
    # the name is optional: generated from the fleet's as Ravel does (ravel/gateways.go generateGatewayName;
    # issue 23 item 14)
    import re

    for body in ({"target_port": 80}, {"name": "", "target_port": 80}):
        gen = api.post(base, json=body)
        assert gen.status_code == 201 and re.fullmatch(rf"{fleet['name']}-[a-z0-9]{{4}}", gen.json()["name"]), gen.text
        assert api.delete(f"{base}/{gen.json()['id']}").status_code == 200
    problem(api.post(base, json={"name": "bad_name", "target_port": 80}), 400, "INVALID_ARGUMENT")
    assert api.delete(f"{base}/web").status_code == 200
    problem(api.get(f"{base}/web"), 404, "NOT_FOUND")
    problem(api.delete(f"{base}/web"), 404, "NOT_FOUND")


def test_machine_shape(api, fleet):
    payload = machine_payload(["sh", "-c", "sleep 30"], env=["A=1"], restart={"policy": "never"})
    payload["enable_machine_gateway"] = True
    r = api.post(f"/fleets/{fleet['name']}/machines", json=payload)
    assert r.status_code == 201, r.text
    m = r.json()
    for key in ("id", "namespace", "fleet", "instance_id", "machine_version", "region", "config", "created_at",
                "updated_at", "events", "state", "gateway_enabled"):
        assert key in m, key
    assert ULID.match(m["id"]) and m["fleet"] == fleet["id"] and m["region"] == "gra-1"
    assert m["config"] == payload["config"]  # as sent
    assert m["state"] == "running" and m["gateway_enabled"] is True
    assert [e["type"] for e in m["events"]][:5] == [
        "machine.created", "machine.prepare", "machine.prepared", "machine.start", "machine.started"]
    ev = m["events"][-1]
    assert set(ev) == {"id", "machine_id", "instance_id", "status", "type", "origin", "payload", "timestamp"}
    assert ev["machine_id"] == m["id"] and ev["instance_id"] == m["instance_id"] and ev["status"] == "running"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", ev["timestamp"])
    assert "started_at" in ev["payload"]["started"]
    got = api.get(f"/fleets/{fleet['id']}/machines/{m['id']}").json()
    assert got["id"] == m["id"] and got["config"] == payload["config"]
    assert [x["id"] for x in api.get(f"/fleets/{fleet['name']}/machines").json()] == [m["id"]]
    gw = f"/fleets/{fleet['name']}/machines/{m['id']}/gateway"
    assert api.post(gw + "/disable").json()["gateway_enabled"] is False
    assert api.get(f"/fleets/{fleet['name']}/machines/{m['id']}").json()["gateway_enabled"] is False
    assert api.post(gw + "/enable").json()["gateway_enabled"] is True
    # a machine belongs to its fleet
    problem(api.get(f"/fleets/default/machines/{m['id']}"), 404, "NOT_FOUND")


def test_machine_ids_are_time_ordered_and_unique(api, fleet):
    ids = [api.post(f"/fleets/{fleet['name']}/machines", json=machine_payload(skip_start=True)).json()["id"]
           for _ in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [m["id"] for m in api.get(f"/fleets/{fleet['name']}/machines").json()] == ids


def _bad(mutate):
    p = machine_payload(["true"])
    mutate(p)
    return p


BAD_MACHINES = {
    "no region": lambda p: p.pop("region"),
    "empty region": lambda p: p.update(region=""),
    "no config": lambda p: p.pop("config"),
    "no image": lambda p: p["config"].pop("image"),
    "empty image": lambda p: p["config"].update(image=""),
    "no guest": lambda p: p["config"].pop("guest"),
    "no cpu_kind": lambda p: p["config"]["guest"].pop("cpu_kind"),
    "memory 0": lambda p: p["config"]["guest"].update(memory_mb=0),
    "memory str": lambda p: p["config"]["guest"].update(memory_mb="512"),
    "cpus 0": lambda p: p["config"]["guest"].update(cpus=0),
    "no cpus": lambda p: p["config"]["guest"].pop("cpus"),
    "policy": lambda p: p["config"]["workload"].update(restart={"policy": "sometimes"}),
    "max_retries": lambda p: p["config"]["workload"].update(restart={"policy": "on-failure", "max_retries": -1}),
    "env no =": lambda p: p["config"]["workload"].update(env=["NOEQUALS"]),
    "env empty key": lambda p: p["config"]["workload"].update(env=["=x"]),
    "env not list": lambda p: p["config"]["workload"].update(env="A=1"),
    "cmd not list": lambda p: p["config"]["workload"]["init"].update(cmd="echo hi"),
    "stop timeout": lambda p: p["config"].update(stop_config={"timeout": 31}),
    "stop timeout neg": lambda p: p["config"].update(stop_config={"timeout": -1}),
    "stop signal": lambda p: p["config"].update(stop_config={"signal": "SIGNOPE"}),
    "skip_start str": lambda p: p.update(skip_start="yes"),
}


HUMA_REQUIRED = {"no region": "region", "no config": "config", "no image": "image", "no guest": "guest",
                 "no cpu_kind": "cpu_kind", "no cpus": "cpus"}


@pytest.mark.parametrize("case", sorted(BAD_MACHINES))
def test_machine_validation(api, case):
    before = len(api.get("/fleets/default/machines").json())
    resp = api.post("/fleets/default/machines", json=_bad(BAD_MACHINES[case]))
    if case in HUMA_REQUIRED:  # a field without omitempty (api/machines.go): huma v2.27.0 answers 422
        body = problem(resp, 422, "UNKNOWN")
        assert body["detail"] == "validation failed"
        assert body["errors"][0]["message"] == f"expected required property {HUMA_REQUIRED[case]} to be present"
    else:
        body = problem(resp, 400, "INVALID_ARGUMENT")
    assert body["errors"][0].get("location", "").startswith("body")
    assert len(api.get("/fleets/default/machines").json()) == before


def test_machine_in_missing_fleet(api):
    problem(api.post("/fleets/nope-nope/machines", json=machine_payload()), 404, "NOT_FOUND")


def test_fleet_delete_refused_while_machines_live(api):
    f = api.post("/fleets", json={"name": name()}).json()
    m = api.post(f"/fleets/{f['id']}/machines", json=machine_payload(skip_start=True)).json()
    body = problem(api.delete(f"/fleets/{f['id']}"), 400, "FAILED_PRECONDITION")
    assert "machine" in body["detail"]
    assert api.delete(f"/fleets/{f['id']}/machines/{m['id']}").status_code == 200
    assert api.delete(f"/fleets/{f['id']}").status_code == 200


def test_unknown_machine(api):
    for method, suffix in [("GET", ""), ("DELETE", ""), ("POST", "/start"), ("POST", "/stop"), ("GET", "/events"),
                           ("GET", "/logs"), ("GET", "/wait?status=running&timeout=1")]:
        r = api.request(method, f"/fleets/default/machines/0000000000000000000000000x{suffix}")
        problem(r, 404, "NOT_FOUND")


def test_a_secret_and_initd_are_scoped_to_their_namespace(sandbox, api):
    """Issue 28 items 2 and 4: the same secret name in two namespaces, each machine gets its own namespace's value
    (made in the other order than the lookup would find them unscoped); initd with another `?namespace=` is 404
    for exec and fs alike, and answers with the machine's own."""
    ns1, ns2, secret = name("ns"), name("ns"), name("s")
    machines = {}
    for ns, value in ((ns1, "first-value"), (ns2, "second-value")):
        assert api.post("/fleets", json={"name": "app"}, params={"namespace": ns}).status_code == 201
        r = api.post(f"/namespaces/{ns}/secrets", json={"name": secret, "value": value})
        assert r.status_code < 300, r.text
    for ns in (ns1, ns2):
        payload = machine_payload(["sleep", "600"])
        payload["config"]["workload"]["secrets"] = [{"name": secret, "env_var": "SECRET_VALUE"}]
        m = api.post("/fleets/app/machines", json=payload, params={"namespace": ns})
        assert m.status_code < 300, m.text
        machines[ns] = m.json()["id"]
    try:
        for ns, mid in machines.items():
            wait_until(lambda: api.get(f"/fleets/app/machines/{mid}", params={"namespace": ns}).json()["state"]
                       == "running", message="the machine to run")
        for ns, want in ((ns1, "first-value"), (ns2, "second-value")):
            out = api.post(f"/fleets/app/machines/{machines[ns]}/exec", params={"namespace": ns},
                           json={"cmd": ["sh", "-c", "echo $SECRET_VALUE"], "timeout_ms": 10000}).json()
            assert out["stdout"] == want + "\n", (ns, out)
        mid = machines[ns1]
        with sandbox.initd_client(mid) as initd:
            for wrong in (ns2, "default"):
                problem(initd.get("/fs/ls", params={"path": "/", "namespace": wrong}), 404, "NOT_FOUND")
                problem(initd.post("/exec", params={"namespace": wrong}, json={"cmd": ["true"], "timeout_ms": 5000}),
                        404, "NOT_FOUND")
                problem(initd.get("/status", params={"namespace": wrong}), 404, "NOT_FOUND")
            assert initd.get("/fs/ls", params={"path": "/", "namespace": ns1}).status_code == 200
            ran = initd.post("/exec", params={"namespace": ns1}, json={"cmd": ["true"], "timeout_ms": 5000})
            assert ran.status_code == 200 and ran.json()["exit_code"] == 0
            assert initd.get("/fs/ls", params={"path": "/"}).status_code == 200  # no namespace: the cloud's initd
    finally:
        for ns, mid in machines.items():
            api.delete(f"/fleets/app/machines/{mid}", params={"namespace": ns, "force": "true"})
