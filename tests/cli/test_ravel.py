"""`valyent` against a stock Ravel: a stand-in written from Ravel's Go source (tests/support/ravelstub.py), reached over real
HTTP on loopback by the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from support.cli import ok, on_terminal, run_cli, run_inproc, spawn
from support.env import cli_environ
from support.ravelstub import RavelStub
from support.util import Chunks, wait_until

TOKEN = "ravel-token-0123456789"
SECRET_VALUE = "hunter2-very-secret-value"


def base_env(tmp_path, url: str) -> dict:
    return cli_environ(tmp_path / "config", url=url, token=TOKEN)


@pytest.fixture
def ravel():
    stub = RavelStub(bearer=f"Bearer {TOKEN}", follow_deadline=0.8)
    yield stub
    stub.close()


@pytest.fixture
def env(tmp_path, ravel) -> dict:
    """A namespace `demo` with a fleet `web`, selected by the environment."""
    env = base_env(tmp_path, ravel.url)
    ok(run_inproc("namespaces", "create", "demo", env=env))
    env["VALYENT_NAMESPACE"] = "demo"
    ok(run_inproc("fleets", "create", "web", env=env))
    env["VALYENT_FLEET"] = "web"
    env["VALYENT_REGION"] = "fr"
    env["VALYENT_CPU_KIND"] = "eco"
    return env


def create_machine(env, *flags: str) -> str:
    return ok(run_inproc("machines", "create", "-q", "--image", "nginx", *flags, env=env)).stdout.strip()


# -- namespaces ---------------------------------------------------------------------------------------------------
def test_namespace_required_and_created(tmp_path, ravel):
    env = base_env(tmp_path, ravel.url)
    missing = run_inproc("fleets", "list", env=env)
    assert missing.returncode == 1
    assert "needs a namespace" in missing.stderr and "VALYENT_NAMESPACE" in missing.stderr
    env["VALYENT_NAMESPACE"] = "team-a"
    absent = run_inproc("fleets", "create", "web", env=env)
    assert absent.returncode == 4
    assert "valyent namespaces create team-a" in absent.stderr
    ok(run_inproc("namespaces", "create", "team-a", env=env))
    # An empty list answered `null` is an empty list.
    assert json.loads(ok(run_inproc("fleets", "list", "--json", env=env)).stdout) == []
    ok(run_inproc("fleets", "create", "web", env=env))
    assert ok(run_inproc("namespaces", "list", "-q", env=env)).stdout.split() == ["team-a"]
    assert "team-a" in ok(run_inproc("namespaces", "show", "team-a", env=env)).stdout
    assert run_inproc("namespaces", "delete", "team-a", env=env).returncode == 2  # --yes needed off a terminal
    ok(run_inproc("namespaces", "delete", "team-a", "--yes", env=env))
    assert json.loads(ok(run_inproc("namespaces", "list", "--json", env=env)).stdout) == []


# -- auth ---------------------------------------------------------------------------------------------------------
def test_auth_scheme_raw_and_hint(tmp_path):
    stub = RavelStub(bearer=TOKEN)  # bearer_token configured without "Bearer "
    try:
        env = base_env(tmp_path, stub.url)
        refused = run_inproc("namespaces", "list", env=env)
        assert refused.returncode == 3
        assert "auth_scheme raw" in refused.stderr
        assert stub.requests[-1][3]["authorization"] == f"Bearer {TOKEN}"
        ok(run_inproc("namespaces", "list", env={**env, "VALYENT_AUTH_SCHEME": "raw"}))
        assert stub.requests[-1][3]["authorization"] == TOKEN
        ok(run_inproc("profiles", "create", "ravel", "--endpoint", stub.url, "--auth-scheme", "raw", "--use", env=env))
        env.pop("VALYENT_API_URL")
        ok(run_inproc("namespaces", "list", env=env))
        assert stub.requests[-1][3]["authorization"] == TOKEN
        bad = run_inproc("profiles", "create", "x", "--auth-scheme", "basic", env=env)
        assert bad.returncode == 2 and "--auth-scheme" in bad.stderr
    finally:
        stub.close()


def test_no_token_sends_no_header(tmp_path):
    stub = RavelStub(bearer=None)  # no bearer_token: no auth at all
    try:
        env = base_env(tmp_path, stub.url)
        env.pop("VALYENT_API_TOKEN")
        ok(run_inproc("namespaces", "create", "open", env=env))
        assert "authorization" not in stub.requests[-1][3]
    finally:
        stub.close()


# -- initd --------------------------------------------------------------------------------------------------------
def test_fs_needs_an_initd_endpoint_off_valyent_cloud(env, ravel):
    machine = create_machine(env)
    before = len(ravel.requests)
    result = run_inproc("fs", "ls", machine, "/", env=env)
    assert result.returncode == 2
    assert "initd_endpoint" in result.stderr and "64242" in result.stderr
    assert len(ravel.requests) == before  # refused before any connection


# -- cpu kind -----------------------------------------------------------------------------------------------------
def test_cpu_kind_from_profile_env_and_flag_with_hint(env, ravel, tmp_path):
    env = dict(env)
    env.pop("VALYENT_CPU_KIND")
    refused = run_inproc("machines", "create", "--image", "nginx", env=env)
    assert refused.returncode == 1
    assert "Invalid CPU kind" in refused.stderr and "--cpu-kind" in refused.stderr and "cpu_kind" in refused.stderr
    create_machine({**env, "VALYENT_CPU_KIND": "std"})
    assert ravel.bodies("POST", "/fleets/web/machines")[-1]["config"]["guest"]["cpu_kind"] == "std"
    ok(run_inproc("profiles", "create", "p", "--cpu-kind", "eco", "--use", env=env))
    create_machine(env)
    assert ravel.bodies("POST", "/fleets/web/machines")[-1]["config"]["guest"]["cpu_kind"] == "eco"
    create_machine(env, "--cpu-kind", "std")
    assert ravel.bodies("POST", "/fleets/web/machines")[-1]["config"]["guest"]["cpu_kind"] == "std"
    project = tmp_path / "proj"
    project.mkdir()
    (project / "valyent.toml").write_text('[machine]\ncpu_kind = "std"\n')
    ok(run_inproc("machines", "create", "-q", "--image", "nginx", env=env, cwd=project))  # project file > profile
    assert ravel.bodies("POST", "/fleets/web/machines")[-1]["config"]["guest"]["cpu_kind"] == "std"
    ok(run_inproc("machines", "create", "-q", "--image", "nginx", env={**env, "VALYENT_CPU_KIND": "eco"}, cwd=project))
    assert ravel.bodies("POST", "/fleets/web/machines")[-1]["config"]["guest"]["cpu_kind"] == "eco"  # env > project


# -- exec and logs ------------------------------------------------------------------------------------------------
def test_exec_answered_204_with_headers(env):
    machine = create_machine(env)
    result = run_inproc("machines", "exec", machine, "--", "sh", "-c", "echo out; echo err >&2; exit 3", env=env)
    assert result.returncode == 3
    assert result.stdout.strip() == "out"
    # runtime/instances.go drops stderr: the note says so, and says it once
    assert "err" not in result.stderr.splitlines() and "newlines" in result.stderr
    assert result.stderr.count("returns no stderr") == 1
    as_json = run_inproc("machines", "exec", machine, "--json", "--", "true", env=env)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["exit_code"] == 0


def test_logs_as_one_array_line_null_and_time_units(env, ravel):
    machine = create_machine(env)
    empty = ok(run_inproc("logs", machine, env=env))
    assert empty.stdout == ""
    ravel.add_logs(machine, ["in seconds"], ts=1700000000)
    ravel.add_logs(machine, ["in milliseconds"], ts=1700000000_000)
    ravel.add_logs(machine, ["in nanoseconds"], ts=1700000000_000_000_000)
    lines = ok(run_inproc("logs", machine, env=env)).stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["in seconds", "in milliseconds", "in nanoseconds"]
    assert len({line.split(" ", 1)[0] for line in lines}) == 1, lines  # the same moment, whatever the unit
    as_json = [json.loads(x) for x in ok(run_inproc("logs", machine, "--json", env=env)).stdout.splitlines()]
    assert [e["message"] for e in as_json] == ["in seconds", "in milliseconds", "in nanoseconds"]


def test_follow_across_cuts_without_replay_twice(env, ravel):
    """Ravel ends every follow stream at its write deadline (0.8 s here, 30 s in Ravel); lines come fast, many per
    second-resolution timestamp and many identical. Every line is printed once, in order."""
    machine = create_machine(env)
    ravel.add_logs(machine, [f"old {i}" for i in range(5)])
    proc = spawn(["logs", machine, "-f"], env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    produced = [f"old {i}" for i in range(5)]
    try:
        deadline = time.monotonic() + 30
        while not any(r[1].endswith("/logs") for r in ravel.requests) and time.monotonic() < deadline:
            time.sleep(0.02)
        deadline = time.monotonic() + 3.5
        n = 0
        while time.monotonic() < deadline:
            # ~50 lines a second: the node's 100-entry window covers a reconnection of up to 2 s even on a
            # loaded machine (faster, a slow reconnect loses lines by design: the follower never prints twice)
            batch = [f"tick {(n + i) // 4}" for i in range(3)]  # four lines in a row share each message
            n += 3
            ravel.add_logs(machine, batch)
            produced += batch
            time.sleep(0.06)  # the pace of the machine's output, not a wait for anything

        def follows() -> int:
            return sum(1 for r in list(ravel.requests) if r[1].endswith("/logs") and r[2].get("follow") == ["true"])

        # a stream opened after the last line replays it: once one is, the machine may end (the follower
        # finishes that stream, then sees the machine destroyed)
        opened = follows()
        wait_until(lambda: follows() > opened, timeout=20, message="a follow stream opened after the last line")
        with ravel.lock:
            ravel.machines[machine]["state"] = "destroyed"
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    printed = [line.split(" ", 1)[1] for line in out.splitlines()]
    assert len(printed) == len(produced), (len(printed), len(produced))
    assert printed == produced
    follows = [r for r in ravel.requests if r[1].endswith("/logs") and r[2].get("follow") == ["true"]]
    assert len(follows) >= 3  # it did reconnect across the cuts
    assert "reconnecting" not in err  # a planned cut is not news


# -- secrets ------------------------------------------------------------------------------------------------------
def test_secrets_set_update_list_delete_never_show_the_value(env, ravel):
    created = ok(run_inproc("--debug", "secrets", "set", "db-password", env=env, input=SECRET_VALUE + "\n"))
    assert "Created" in created.stderr
    updated = ok(run_inproc("--debug", "secrets", "set", "db-password", env=env, input="second-" + SECRET_VALUE))
    assert "Updated" in updated.stderr
    assert ravel.bodies("POST", "/namespaces/demo/secrets") == [{"name": "db-password", "value": SECRET_VALUE}]
    assert ravel.bodies("PATCH", "/namespaces/demo/secrets/db-password") == [{"value": "second-" + SECRET_VALUE}]
    listed = ok(run_inproc("secrets", "list", env=env))
    as_json = ok(run_inproc("secrets", "list", "--json", env=env))
    machine = create_machine(env, "--secret", "db-password:DB_PASSWORD")
    shown = ok(run_inproc("machines", "show", machine, env=env))
    versions = ok(run_inproc("machines", "versions", machine, env=env))
    for result in (created, updated, listed, as_json, shown, versions):
        assert SECRET_VALUE not in result.stdout + result.stderr
    assert "db-password as DB_PASSWORD" in shown.stdout
    for _m, _p, _q, headers, _b in ravel.requests:
        assert SECRET_VALUE not in json.dumps(headers)
    assert ok(run_inproc("secrets", "list", "-q", env=env)).stdout.split() == ["db-password"]
    ok(run_inproc("secrets", "delete", "db-password", "--yes", env=env))
    assert ok(run_inproc("secrets", "list", "-q", env=env)).stdout == ""


@pytest.mark.parametrize(("args", "stdin", "needle"), [
    (["secrets", "set", "Bad_Name"], "x", "NAME"),
    (["secrets", "set", "ok-name"], "", "empty"),
    (["secrets", "delete", "ok-name"], None, "--yes"),
])
def test_secret_bad_input_exits_2_before_any_request(env, ravel, args, stdin, needle):
    before = len(ravel.requests)
    result = run_inproc(*args, env=env, input=stdin)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert len(ravel.requests) == before


# -- labels, workload ---------------------------------------------------------------------------------------------
def test_machine_workload_flags_on_the_wire(env, ravel):
    ok(run_inproc("secrets", "set", "db-password", env=env, input=SECRET_VALUE))
    machine = create_machine(
        env, "--secret", "db-password:DB_PASSWORD", "--health-cmd", "test -e '/tmp/ready file'",
        "--health-interval", "1m", "--health-timeout", "2s", "--health-retries", "5", "--volume", "data:/var/lib/data",
        "--volume", "cache:/cache", "--network", "backend=10.0.1.2/24", "--label", "app=web", "--label", "tier=front",
        "--annotation", "owner=ops@example.com",
    )
    body = ravel.bodies("POST", "/fleets/web/machines")[-1]
    workload = body["config"]["workload"]
    assert workload["secrets"] == [{"name": "db-password", "env_var": "DB_PASSWORD"}]
    assert workload["health_check"] == {"exec": ["test", "-e", "/tmp/ready file"], "interval": 60, "timeout": 2,
                                        "retries": 5}
    assert workload["volumes"] == [{"name": "data", "path": "/var/lib/data"}, {"name": "cache", "path": "/cache"}]
    assert workload["private_networks"] == [{"name": "backend", "ip": "10.0.1.2/24"}]
    assert body["metadata"] == {"labels": {"app": "web", "tier": "front"}, "annotations": {"owner": "ops@example.com"}}
    shown = ok(run_inproc("machines", "show", machine, env=env)).stdout
    for text in ("app=web", "db-password as DB_PASSWORD", "data at /var/lib/data", "backend 10.0.1.2/24", "Health"):
        assert text in shown
    ok(run_inproc("machines", "wait", machine, "--healthy", "--timeout", "10s", env=env))
    listed = ok(run_inproc("machines", "list", env=env)).stdout
    assert "HEALTH" in listed and "healthy" in listed
    other = create_machine(env, "--label", "app=api")
    assert ok(run_inproc("machines", "list", "-q", "--label", "app=web", env=env)).stdout.split() == [machine]
    ok(run_inproc("machines", "label", machine, "tier-", "stage=prod", env=env))
    assert ravel.bodies("PATCH", rf"/fleets/[^/]+/machines/{machine}/metadata")[-1] == {
        "metadata": {"labels": {"app": "web", "stage": "prod"}, "annotations": {"owner": "ops@example.com"}}}
    assert other != machine
    versions = json.loads(ok(run_inproc("machines", "versions", machine, "--json", env=env)).stdout)
    assert versions[0]["machine_id"] == machine


def test_a_label_value_ending_in_a_dash_is_set_not_removed(env, ravel):
    """Issue 28 item 9: `K-` removes K (kubectl's syntax), but `tier=web-` sets tier to `web-` (Ravel takes any
    value up to 255 characters: ravel/validation.go validateLabelValue)."""
    machine = create_machine(env, "--label", "app=web")
    ok(run_inproc("machines", "label", machine, "tier=web-", "app-", env=env))
    assert ravel.bodies("PATCH", rf"/fleets/[^/]+/machines/{machine}/metadata")[-1]["metadata"]["labels"] == {
        "tier": "web-"}
    ok(run_inproc("fleets", "label", "web", "stage=pre-", env=env))
    assert [b["metadata"]["labels"] for b in ravel.bodies("PATCH", r"/fleets/[^/]+/metadata")][-1] == {"stage": "pre-"}


def test_config_file_and_project_accept_ravel_workload_keys(env, ravel, tmp_path):
    config = tmp_path / "machine.json"
    config.write_text(json.dumps({"config": {"image": "nginx", "workload": {
        "health_check": {"exec": ["true"], "interval": 5}, "private_networks": [{"name": "n", "ip": "10.1.0.3/16"}],
        "volumes": [{"name": "d", "path": "/d"}]}}, "metadata": {"labels": {"from": "file"}}}))
    project = tmp_path / "proj"
    project.mkdir()
    (project / "valyent.toml").write_text(
        '[machine]\nhealth_cmd = "curl -fs localhost"\nhealth_interval = "10s"\nvolumes = ["v:/v"]\n'
        'networks = ["net=10.2.0.1/24"]\nlabels = { team = "core" }\n')
    ok(run_inproc("machines", "create", "-q", "--config", str(config), env=env))
    workload = ravel.bodies("POST", "/fleets/web/machines")[-1]["config"]["workload"]
    assert workload["health_check"] == {"exec": ["true"], "interval": 5}
    ok(run_inproc("machines", "create", "-q", "--image", "nginx", env=env, cwd=project))
    body = ravel.bodies("POST", "/fleets/web/machines")[-1]
    assert body["config"]["workload"]["health_check"] == {"exec": ["curl", "-fs", "localhost"], "interval": 10}
    assert body["config"]["workload"]["volumes"] == [{"name": "v", "path": "/v"}]
    assert body["config"]["workload"]["private_networks"] == [{"name": "net", "ip": "10.2.0.1/24"}]
    assert body["metadata"] == {"labels": {"team": "core"}}


def test_fleet_labels_create_list_label(env, ravel):
    ok(run_inproc("fleets", "create", "api", "--label", "team=payments", "--annotation", "note=x", env=env))
    assert ravel.bodies("POST", "/fleets")[-1] == {"name": "api", "metadata": {"labels": {"team": "payments"},
                                                                               "annotations": {"note": "x"}}}
    names = [f["name"] for f in json.loads(ok(run_inproc("fleets", "list", "--label", "team=payments", "--json",
                                                      env=env)).stdout)]
    assert names == ["api"]
    assert ravel.requests[-1][2].get("labels[team]") == ["payments"]
    ok(run_inproc("fleets", "label", "api", "team-", "tier=gold", env=env))
    assert ravel.bodies("PATCH", r"/fleets/[^/]+/metadata")[-1] == {
        "metadata": {"labels": {"tier": "gold"}, "annotations": {"note": "x"}}}
    assert "tier=gold" in ok(run_inproc("fleets", "show", "api", env=env)).stdout


BAD = [
    (["machines", "create", "--image", "x", "--secret", "nocolon"], "--secret"),
    (["machines", "create", "--image", "x", "--secret", "Bad_Name:VAR"], "--secret"),
    (["machines", "create", "--image", "x", "--volume", "data:relative"], "--volume"),
    (["machines", "create", "--image", "x", "--volume", "data:/"], "--volume"),  # issue 28 item 11
    (["machines", "create", "--image", "x", "--volume", "data://."], "--volume"),
    (["machines", "create", "--image", "x", "--volume", "data:/data:ro"], "--volume"),  # issue 27 item 18
    (["machines", "create", "--image", "x", "--volume", "data:/data:U,O"], "--volume"),
    (["machines", "create", "--image", "x", "--network", "n=10.0.0.300/24"], "--network"),
    (["machines", "create", "--image", "x", "--network", "n=10.0.0.3"], "--network"),
    (["machines", "create", "--image", "x", "--health-interval", "10s"], "--health-cmd"),
    (["machines", "create", "--image", "x", "--health-cmd", "true", "--health-interval", "0s"], "--health-interval"),
    (["machines", "create", "--image", "x", "--health-cmd", "true", "--health-retries", "0"], "--health-retries"),
    (["machines", "create", "--image", "x", "--health-cmd", "'unclosed"], "--health-cmd"),
    (["machines", "create", "--image", "x", "--label", "ravel.io/x=1"], "reserved"),
    (["machines", "create", "--image", "x", "--label", "k" * 64 + "=v"], "--label"),
    (["machines", "create", "--image", "x", "--label", "k=" + "v" * 256], "--label"),
    (["machines", "create", "--image", "x", "--label", "novalue"], "--label"),
    (["machines", "create", "--image", "x", *sum((["--label", f"k{i}=v"] for i in range(65)), [])], "at most 64"),
    (["machines", "list", "--label", "bad key=v"], "--label"),
    (["machines", "label", "m1", "ravel.x=1"], "reserved"),
    (["fleets", "create", "f", "--annotation", "ravel.a=1"], "reserved"),
    (["fleets", "label", "web", "a=1", "a-"], "both"),
    (["profiles", "create", "p", "--ca-cert", "/nonexistent.pem"], "--ca-cert"),
    # a namespace Ravel would never have created (ravel/validation.go, validateObjectName): no request could succeed
    (["fleets", "list", "--namespace", "-dash"], "--namespace"),
    (["--namespace", "a/b", "machines", "list"], "--namespace"),
    (["secrets", "list", "--namespace", "n" * 64], "longer than 63"),
]


@pytest.mark.parametrize(("args", "needle"), BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_values_exit_2_before_any_request(env, ravel, args, needle):
    before = len(ravel.requests)
    result = run_inproc(*args, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert needle in result.stderr
    assert len(ravel.requests) == before


def test_a_bad_namespace_from_the_environment_or_a_profile_exits_2_before_any_request(env, ravel, tmp_path):
    before = len(ravel.requests)
    result = run_inproc("fleets", "list", env={**env, "VALYENT_NAMESPACE": "sp ace"})
    assert result.returncode == 2 and "VALYENT_NAMESPACE" in result.stderr, result.stderr
    result = run_inproc("profiles", "set", "namespace", "bad_name", env=env)
    assert result.returncode == 2 and "namespace" in result.stderr, result.stderr
    assert len(ravel.requests) == before


# -- nodes, versions, gateways, completion -----------------------------------------------------------------------
def test_nodes_and_nameless_gateway(env, ravel):
    nodes = ok(run_inproc("nodes", "list", env=env)).stdout
    assert "node-1" in nodes and "10.0.0.1:8080" in nodes and "fr" in nodes
    gateway = json.loads(ok(run_inproc("gateways", "create", "--port", "8080", "--json", env=env)).stdout)
    # ravel/gateways.go: the fleet's name and four characters; the id starts with gw_
    assert gateway["name"].startswith("web-") and gateway["id"].startswith("gw_")
    assert ravel.bodies("POST", "/fleets/web/gateways") == [{"target_port": 8080}]


def test_completion_of_namespaces_and_secrets(env, ravel):
    ok(run_inproc("namespaces", "create", "other", env=env))
    ok(run_inproc("secrets", "set", "api-key", env=env, input="v"))
    done = run_cli(env={**env, "_VALYENT_COMPLETE_VALUES": "namespace",
                        "_VALYENT_COMPLETE_LINE": "valyent namespaces show o"})
    assert done.stdout.split() == ["other"]
    done = run_cli(env={**env, "_VALYENT_COMPLETE_VALUES": "secret", "_VALYENT_COMPLETE_LINE": "valyent secrets delete "})
    assert done.stdout.split() == ["api-key", "secret"]


# -- the SDK ------------------------------------------------------------------------------------------------------
def test_sdk_gateways_by_name_on_ravel(ravel):
    """Ravel looks a gateway up by name with a malformed query (a 500, ravel/state/db/gateways.go): the SDK finds
    the name in the fleet's list, at once (a 500 of that lookup is not retried), for get and for delete."""
    from valyent_cli.api import Client, NotFound

    with Client(TOKEN, endpoint=ravel.url, namespace="gws") as client:
        client.namespaces.create("gws")
        fleet = client.fleets.create("f")["id"]
        made = client.gateways.create(fleet, name="front", target_port=8080)
        before = len(ravel.requests)
        assert client.gateways.get(fleet, "front")["id"] == made["id"]
        assert [(m, p.rsplit("/", 1)[-1]) for m, p, *_ in ravel.requests[before:]] == [("GET", "front"),
                                                                                       ("GET", "gateways")]
        assert client.gateways.get(fleet, made["id"])["name"] == "front"  # an id: asked directly
        with pytest.raises(NotFound):
            client.gateways.get(fleet, "nothing")
        client.gateways.delete(fleet, "front")
        assert client.gateways.list(fleet) == []


def test_sdk_against_ravel(ravel):
    from valyent_cli.api import Client

    with Client(TOKEN, endpoint=ravel.url, namespace="sdk") as client:
        client.namespaces.create("sdk")
        fleet = client.fleets.create("f", labels={"a": "b"})
        assert [f["name"] for f in client.fleets.list(labels={"a": "b"})] == ["f"]
        assert client.fleets.list(labels={"a": "c"}) == []
        machine = client.machines.create(fleet["id"], {"region": "fr", "config": {
            "image": "nginx", "guest": {"cpu_kind": "eco", "cpus": 1, "memory_mb": 256}}})
        result = machine.exec(["sh", "-c", "printf 'a\\nb'; exit 4"])
        assert result == {"stdout": "a b", "stderr": "", "exit_code": 4} and result.from_headers
        ravel.add_logs(machine["id"], ["x", "y"])
        assert [e["message"] for e in machine.logs()] == ["x", "y"]
        assert client.secrets.set("k", "v")[1] is True and client.secrets.set("k", "w")[1] is False
        assert [s["name"] for s in client.secrets.list()] == ["k"]
        assert client.nodes.list()[0]["region"] == "fr"


# -- TLS ----------------------------------------------------------------------------------------------------------
def test_mtls_with_ca_and_client_certificate(tmp_path):
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost")
    client_cert = ca.issue_cert("valyent-client")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED  # Ravel's RequireAndVerifyClientCert
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    cert_pem, key_pem = tmp_path / "client.pem", tmp_path / "client.key"
    client_cert.cert_chain_pems[0].write_to_path(str(cert_pem))
    client_cert.private_key_pem.write_to_path(str(key_pem))
    stub = RavelStub(bearer=f"Bearer {TOKEN}", ssl_context=context)
    try:
        env = base_env(tmp_path, stub.url)
        untrusted = run_inproc("namespaces", "list", env=env)
        assert untrusted.returncode == 1 and "cannot reach" in untrusted.stderr
        no_client_cert = run_inproc("namespaces", "list", env={**env, "VALYENT_CA_CERT": str(ca_pem)})
        assert no_client_cert.returncode == 1
        assert stub.requests == []  # nothing got past the handshake
        with_env = run_inproc("namespaces", "create", "tls", env={
            **env, "VALYENT_CA_CERT": str(ca_pem), "VALYENT_CLIENT_CERT": str(cert_pem),
            "VALYENT_CLIENT_KEY": str(key_pem)})
        ok(with_env)
        ok(run_inproc("profiles", "create", "secure", "--endpoint", stub.url, "--ca-cert", str(ca_pem), "--client-cert",
                   str(cert_pem), "--client-key", str(key_pem), "--use", env=env))
        env.pop("VALYENT_API_URL")
        assert ok(run_inproc("namespaces", "list", "-q", env=env)).stdout.split() == ["tls"]
        shown = ok(run_inproc("profiles", "show", "secure", env=env)).stdout
        assert str(cert_pem) in shown
    finally:
        stub.close()


def test_wait_healthy_times_out_and_needs_a_check(env, ravel):
    ravel.healthy_after = 3600
    checked = create_machine(env, "--health-cmd", "true")
    late = run_inproc("machines", "wait", checked, "--healthy", "--timeout", "1s", env=env)
    assert late.returncode == 5 and "not healthy" in late.stderr
    plain = create_machine(env)
    nothing = run_inproc("machines", "wait", plain, "--healthy", "--timeout", "1s", env=env)
    assert nothing.returncode == 2 and "no health check" in nothing.stderr


def test_follower_matches_replays_of_a_sliding_window():
    """The node keeps its last 100 entries (dropping 20 when full); each reconnection replays that window, then
    `null`, then live lines. With many identical lines in one second, every entry is yielded once, in order."""
    from contextlib import contextmanager

    from valyent_cli.api.logs import LogFollower

    history: list[dict] = []
    window: list[dict] = []

    def append(message: str, ts: int) -> None:
        entry = {"timestamp": ts, "instance_id": "i", "source": "stdout", "level": "info", "message": message}
        history.append(entry)
        if len(window) >= 100:
            del window[:20]
        window.append(entry)

    def line(entry: dict) -> bytes:
        return json.dumps(entry).encode() + b"\n"

    connections = []
    # (appended while away, live on the connection); at most 80 away, so that the window still holds the last one seen
    plan = [(30, 10), (45, 25), (0, 7), (80, 3), (60, 40), (79, 0), (5, 0)]
    counter = iter(range(10**6))

    @contextmanager
    def open_stream(_idle):
        away, live = plan[len(connections)]
        for _ in range(away):
            n = next(counter)
            append(f"same {n // 7}", 1700000000 + n // 50)
        chunks = [b"".join(line(e) for e in window) + b"null\n"]
        for _ in range(live):
            n = next(counter)
            append(f"same {n // 7}", 1700000000 + n // 50)
            chunks.append(line(window[-1]))
        connections.append(len(window))
        yield Chunks(chunks)

    follower = LogFollower(open_stream, is_finished=lambda: len(connections) == len(plan), backoff_base=0)
    got = list(follower)
    assert [e["message"] for e in got] == [e["message"] for e in history]
    assert len(got) == len(history)


def test_readme_self_hosted_section_walkthrough(tmp_path):
    """The README's "Self-hosted Ravel" steps, as written there, against a stock Ravel."""
    stub = RavelStub(bearer=TOKEN)  # configured without "Bearer ": the raw scheme
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VALYENT_")}
        env.update(VALYENT_CONFIG_DIR=str(tmp_path / "config"), NO_COLOR="1")
        ok(run_inproc("profiles", "create", "ravel", "--endpoint", stub.url, "--namespace", "demo", "--region", "fr",
                   "--cpu-kind", "eco", "--token-stdin", "--use", env=env, input=TOKEN))
        assert run_inproc("namespaces", "create", "demo", env=env).returncode == 3
        ok(run_inproc("profiles", "set", "auth_scheme", "raw", env=env))
        ok(run_inproc("namespaces", "create", "demo", env=env))
        ok(run_inproc("fleets", "create", "web", "--label", "team=core", "--use", env=env))
        ok(run_inproc("secrets", "set", "db-password", env=env, input=SECRET_VALUE))
        machine = ok(run_inproc("machines", "create", "-q", "--image", "nginx", "--label", "app=web", "--secret",
                             "db-password:DB_PASSWORD", "--health-cmd", "curl -fs localhost", "--health-interval", "10s",
                             "--volume", "data:/var/lib/data", "--network", "backend=10.0.1.2/24", env=env)).stdout.strip()
        ok(run_inproc("machines", "wait", machine, "--healthy", env=env))
        assert run_inproc("machines", "exec", machine, "--", "sh", "-c", "exit 7", env=env).returncode == 7
        stub.add_logs(machine, ["hello"])
        assert ok(run_inproc("logs", machine, env=env)).stdout.rstrip().endswith("hello")
        ok(run_inproc("machines", "label", machine, "tier=front", "app-", env=env))
        assert ok(run_inproc("machines", "list", "-q", "--label", "tier=front", env=env)).stdout.split() == [machine]
        ok(run_inproc("machines", "versions", machine, env=env))
        fs = run_inproc("fs", "ls", machine, "/", env=env)
        assert fs.returncode == 2 and "initd_endpoint" in fs.stderr
    finally:
        stub.close()


def test_auth_login_and_status_against_ravel_without_a_namespace(tmp_path, ravel):
    env = base_env(tmp_path, ravel.url)
    env.pop("VALYENT_API_TOKEN")
    ok(run_inproc("auth", "login", "--token-stdin", env=env, input=TOKEN))
    status = ok(run_inproc("auth", "status", env=env))
    assert "token accepted" in status.stdout
    refused = run_inproc("auth", "login", "--token-stdin", env=env, input="wrong-token-0000")
    assert refused.returncode == 3


def test_secrets_set_on_a_terminal_asks_without_echo(env, ravel):
    code, screen = on_terminal(["secrets", "set", "tty-secret"], env, columns=None,
                               answers=((b"not shown", SECRET_VALUE.encode() + b"\n"),), color=False)
    assert code == 0, screen
    assert SECRET_VALUE not in screen  # not echoed
    assert "Created secret tty-secret" in screen
    assert ravel.bodies("POST", "/namespaces/demo/secrets")[-1] == {"name": "tty-secret", "value": SECRET_VALUE}


def test_secret_value_never_over_plain_http_to_a_remote_host(tmp_path):
    env = base_env(tmp_path, "http://ravel.invalid:3000")
    env.pop("VALYENT_API_TOKEN")
    env["VALYENT_NAMESPACE"] = "demo"
    refused = run_inproc("secrets", "set", "db-password", env=env, input=SECRET_VALUE)
    assert refused.returncode == 2 and "plain http" in refused.stderr
    assert SECRET_VALUE not in refused.stderr


def test_a_401_without_a_token_says_none_was_sent(tmp_path, ravel):
    env = base_env(tmp_path, ravel.url)
    env.pop("VALYENT_API_TOKEN")
    refused = run_inproc("namespaces", "list", env=env)
    assert refused.returncode == 3 and "no token was sent" in refused.stderr
