"""Issue 23 items 14-17: a request the sandbox accepts, a stock Ravel accepts, and what Ravel refuses the sandbox
refuses the same way. Each rule names the Go file it comes from (Ravel's source; huma v2.27.0, which Ravel pins)."""

from __future__ import annotations

import httpx
import pytest

from support.cli import ok, run_cli
from support.util import machine_payload, name, problem, wait_until


def _huma_422(resp, location: str, message: str) -> dict:
    """huma v2.27.0's validation failure (validate.go), through Ravel's error builder (internal/humautil/errors.go:
    `Code` UNKNOWN for a 422)."""
    body = problem(resp, 422, "UNKNOWN")
    assert body["detail"] == "validation failed" and body["title"] == "Unprocessable Entity", body
    assert {"location": location, "message": message} in [
        {"location": e.get("location"), "message": e.get("message")} for e in body["errors"]], body
    return body


# -- item 14: the gateway name is optional -------------------------------------------------------------------------
def test_the_clis_own_example_creates_a_gateway_without_a_name(cli_env, sandbox):
    """`gateways create --port 8080 -q` (the CLI's example) failed with "gateway name is required"; Ravel generates
    the name (ravel/gateways.go generateGatewayName)."""
    env = {**cli_env, "VALYENT_FLEET": "default"}
    made = ok(run_cli("gateways", "create", "--port", "8080", "-q", env=env))
    gid = made.stdout.strip()
    assert gid.startswith("gw_")
    with sandbox.client() as api:
        gw = api.get(f"/fleets/default/gateways/{gid}").json()
        assert gw["name"].startswith("default-") and len(gw["name"]) == len("default-") + 4
        assert api.delete(f"/fleets/default/gateways/{gid}").status_code == 200


# -- item 15: unknown keys, required fields, restart, signals, exec's timeout_ms -----------------------------------
def _with(payload: dict, path: str, value) -> dict:
    node = payload
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {}) if not key.isdigit() else node[int(key)]
    node[keys[-1]] = value
    return payload


UNKNOWN_KEYS = [  # (where the extra key goes in a create payload, its location in huma's answer)
    ("extra", "body.extra"),
    ("config.extra", "body.config.extra"),
    ("config.guest.extra", "body.config.guest.extra"),
    ("config.workload.extra", "body.config.workload.extra"),
    ("config.workload.restart_policy", "body.config.workload.restart_policy"),  # the key is `restart`
    ("config.workload.restart.extra", "body.config.workload.restart.extra"),
    ("config.workload.init.extra", "body.config.workload.init.extra"),
    ("config.stop_config.extra", "body.config.stop_config.extra"),
    ("config.workload.health_check.extra", "body.config.workload.health_check.extra"),
    ("metadata.extra", "body.metadata.extra"),
    ("config.auto_destroy", "body.config.auto_destroy"),  # it lives in workload (api/machines.go)
]


@pytest.mark.parametrize(("where", "location"), UNKNOWN_KEYS, ids=[w for w, _ in UNKNOWN_KEYS])
def test_an_unknown_key_in_any_body_object_is_a_422_with_its_location(api, where, location):
    """huma v2.27.0 (validate.go): `additionalProperties: false` on every struct, "unexpected property"."""
    payload = machine_payload(["true"], skip_start=True)
    payload["config"]["workload"]["health_check"] = {"exec": ["true"]}
    payload["config"]["stop_config"] = {"timeout": 1}
    payload["metadata"] = {"labels": {"a": "b"}}
    payload["config"]["workload"]["restart"] = {"policy": "never"}
    value = {"policy": "always"} if where.endswith("restart_policy") else True
    _huma_22 = _huma_422(api.post("/fleets/default/machines", json=_with(payload, where, value)), location,
                         "unexpected property")
    assert _huma_22["errors"][0]["value"]  # the object, as huma reports it


def test_unknown_keys_in_array_items_and_in_every_other_body(api):
    payload = machine_payload(["true"], skip_start=True)
    payload["config"]["workload"]["volumes"] = [{"name": "v", "path": "/v", "ro": True}]
    payload["config"]["workload"]["secrets"] = [{"name": "s", "env_var": "S", "x": 1}]
    body = _huma_422(api.post("/fleets/default/machines", json=payload), "body.config.workload.volumes[0].ro",
                     "unexpected property")
    assert "body.config.workload.secrets[0].x" in [e["location"] for e in body["errors"]]  # every error at once
    mid = api.post("/fleets/default/machines", json=machine_payload(["sleep", "60"])).json()["id"]
    m = f"/fleets/default/machines/{mid}"
    for method, path, json_body, location in (
        ("POST", "/fleets", {"name": name(), "x": 1}, "body.x"),
        ("PATCH", "/fleets/default/metadata", {"metadata": {}, "x": 1}, "body.x"),
        ("POST", "/fleets/default/gateways", {"target_port": 80, "x": 1}, "body.x"),
        ("POST", "/namespaces", {"name": name(), "x": 1}, "body.x"),
        ("POST", "/namespaces/default/secrets", {"name": name(), "value": "v", "x": 1}, "body.x"),
        ("POST", f"{m}/exec", {"cmd": ["true"], "timeout_ms": 1000, "x": 1}, "body.x"),
        ("POST", f"{m}/stop", {"signal": "SIGTERM", "x": 1}, "body.x"),
        ("PATCH", f"{m}/metadata", {"metadata": {"labels": {}, "x": 1}}, "body.metadata.x"),
    ):
        _huma_422(api.request(method, path, json=json_body), location, "unexpected property")
    assert api.delete(m, params={"force": "true"}).status_code == 200


REQUIRED = [  # (what is taken out, the object's location, the property) from api/*.go: fields without omitempty
    (lambda p: p["config"]["workload"]["volumes"][0].pop("path"), "body.config.workload.volumes[0]", "path"),
    (lambda p: p["config"]["workload"]["secrets"][0].pop("env_var"), "body.config.workload.secrets[0]", "env_var"),
    (lambda p: p["config"]["workload"]["private_networks"][0].pop("ip"),
     "body.config.workload.private_networks[0]", "ip"),
    (lambda p: p["config"]["guest"].pop("memory_mb"), "body.config.guest", "memory_mb"),
    (lambda p: p.pop("region"), "body", "region"),
]


@pytest.mark.parametrize(("take", "location", "prop"), REQUIRED, ids=[p for _, _, p in REQUIRED])
def test_huma_required_fields(api, take, location, prop):
    payload = machine_payload(["true"], skip_start=True)
    payload["config"]["workload"].update(volumes=[{"name": "v", "path": "/v"}],
                                         secrets=[{"name": "s", "env_var": "S"}],
                                         private_networks=[{"name": "n", "ip": "10.0.0.2/24"}])
    take(payload)
    _huma_422(api.post("/fleets/default/machines", json=payload), location,
              f"expected required property {prop} to be present")


def test_required_fields_of_the_other_bodies(api):
    mid = api.post("/fleets/default/machines", json=machine_payload(["sleep", "60"])).json()["id"]
    for method, path, body, prop in (
        ("POST", f"/fleets/default/machines/{mid}/exec", {"cmd": ["true"]}, "timeout_ms"),  # api/machines.go
        ("POST", "/fleets/default/gateways", {"name": name()}, "target_port"),  # api/gateways.go
        ("POST", "/fleets", {"metadata": {}}, "name"),  # api/fleets.go
        ("PATCH", f"/fleets/default/machines/{mid}/metadata", {}, "metadata"),  # api/metadata.go
        ("PATCH", "/namespaces/default/secrets/nope", {}, "value"),  # api/secrets.go (before the lookup? no:)
    ):
        resp = api.request(method, path, json=body)
        if path.endswith("/nope"):
            assert resp.status_code in (404, 422)  # the secret route resolves the secret first here
            continue
        _huma_422(resp, "body", f"expected required property {prop} to be present")
    assert api.delete(f"/fleets/default/machines/{mid}", params={"force": "true"}).status_code == 200


def test_the_restart_key_is_restart(api):
    """api/machines.go: `Restart RestartPolicyConfig json:"restart,omitempty"`; `restart_policy` is refused, not
    read as a second spelling."""
    payload = machine_payload(["sh", "-c", "exit 3"], restart={"policy": "on-failure", "max_retries": 1})
    r = api.post("/fleets/default/machines", json=payload)
    assert r.status_code in (200, 201), r.text
    api.delete(f"/fleets/default/machines/{r.json()['id']}", params={"force": "true"})
    payload["config"]["workload"]["restart_policy"] = payload["config"]["workload"].pop("restart")
    _huma_422(api.post("/fleets/default/machines", json=payload), "body.config.workload.restart_policy",
              "unexpected property")


NODE_SIGNALS = ["SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGFPE", "SIGKILL", "SIGUSR1",
                "SIGSEGV", "SIGPIPE", "SIGALRM", "SIGTERM"]  # internal/signals/signals.go FromString


def test_stop_signals_are_the_nodes_list_exactly(api):
    from valyent_cli.api.constants import SIGNALS

    assert sorted(SIGNALS) == sorted(NODE_SIGNALS)  # the one list (most used first, for completion): CLI validation, completion and the sandbox
    for sig in ("SIGUSR2", "SIGWINCH", "SIGSTOP", "SIGCONT", "SIGPWR", "term", "sigterm", "TERM", "SIGterm"):
        payload = machine_payload(["true"], skip_start=True, stop_config={"signal": sig})
        body = problem(api.post("/fleets/default/machines", json=payload), 400, "INVALID_ARGUMENT")
        assert body["errors"][0]["location"] == "body.config.stop_config.signal"
    for sig in NODE_SIGNALS:
        payload = machine_payload(["true"], skip_start=True, stop_config={"signal": sig})
        r = api.post("/fleets/default/machines", json=payload)
        assert r.status_code in (200, 201), (sig, r.text)
        api.delete(f"/fleets/default/machines/{r.json()['id']}", params={"force": "true"})


# -- item 16: a raw token ------------------------------------------------------------------------------------------
def test_a_raw_token_is_accepted_as_ravel_compares_the_whole_header(sandbox, cli_env):
    """ravel/server/auth.go compares the whole Authorization header with its token: a profile with `auth_scheme
    raw` sends the bare token."""
    for header, status in ((sandbox.token, 200), (f"Bearer {sandbox.token}", 200), (f"bearer  {sandbox.token}", 200),
                           (f"Basic {sandbox.token}", 401), (sandbox.token + "x", 401), ("", 401)):
        r = httpx.get(sandbox.url + "/fleets", headers={"Authorization": header})
        assert r.status_code == status, header.replace(sandbox.token, "TOKEN")
    ok(run_cli("fleets", "list", "-q", env={**cli_env, "VALYENT_AUTH_SCHEME": "raw"}))


# -- item 17: wait, and query booleans -----------------------------------------------------------------------------
def test_wait_on_a_destroyed_machine_is_a_404_and_the_cli_takes_it_as_done(api, cli_env):
    """Ravel's getMachine excludes destroyed rows (ravel/state/db/machines.go): wait answers 404."""
    mid = api.post("/fleets/default/machines", json=machine_payload(["sleep", "60"])).json()["id"]
    assert api.delete(f"/fleets/default/machines/{mid}", params={"force": "true"}).status_code == 200
    wait_until(lambda: api.get(f"/fleets/default/machines/{mid}").json()["state"] == "destroyed",
               message="the machine to be destroyed")
    problem(api.get(f"/fleets/default/machines/{mid}/wait", params={"status": "destroyed", "timeout": 5}), 404,
            "NOT_FOUND")
    problem(api.get(f"/fleets/default/machines/{mid}/wait", params={"status": "running", "timeout": 5}), 404,
            "NOT_FOUND")
    ok(run_cli("machines", "wait", mid, "--fleet", "default", "--state", "destroyed", "--timeout", "5s", env=cli_env))


def test_a_wait_without_a_timeout_is_a_400(api):
    mid = api.post("/fleets/default/machines", json=machine_payload(["sleep", "60"])).json()["id"]
    body = problem(api.get(f"/fleets/default/machines/{mid}/wait", params={"status": "running"}), 400,
                   "INVALID_ARGUMENT")
    assert body["detail"] == "timeout must be between 1 and 60 seconds"  # ravel/server/endpoints/machines.go
    api.delete(f"/fleets/default/machines/{mid}", params={"force": "true"})


def test_query_booleans_parse_as_gos_strconv_parsebool(api):
    """huma.go reads a bool parameter with strconv.ParseBool: 1 t T TRUE true True / 0 f F FALSE false False; empty
    is unset; anything else is a 422 "invalid boolean"."""
    mid = api.post("/fleets/default/machines", json=machine_payload(["sleep", "60"])).json()["id"]
    m = f"/fleets/default/machines/{mid}"
    for bad in ("yes", "on", "tRUE", "2", " true"):
        _huma_422(api.get("/fleets/default/machines", params={"destroyed": bad}), "query.destroyed", "invalid boolean")
        _huma_422(api.delete(m, params={"force": bad}), "query.force", "invalid boolean")
        _huma_422(api.get(f"{m}/logs", params={"follow": bad}), "query.follow", "invalid boolean")
    assert api.delete(m, params={"force": "T"}).status_code == 200
    wait_until(lambda: api.get(m).json()["state"] == "destroyed", message="the machine to be destroyed")
    for good, listed in (("1", True), ("t", True), ("TRUE", True), ("True", True), ("0", False), ("F", False),
                         ("False", False), ("", False)):
        ids = [x["id"] for x in api.get("/fleets/default/machines", params={"destroyed": good}).json()]
        assert (mid in ids) is listed, good
