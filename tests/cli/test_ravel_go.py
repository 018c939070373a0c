"""`valyent` against Ravel as its Go code really behaves (issue 23): the stand-in (tests/support/ravelstub.py) read
field by field with huma v2.27.0's rules, and the no-op cluster state of the Ravel of today (core/cluster/noop.go).
The real CLI in process (run_inproc) or the SDK, over real HTTP on loopback."""

from __future__ import annotations

import json

import pytest
from support.cli import ok, run_inproc
from support.env import cli_environ
from support.ravelstub import SIGNALS, RavelStub

TOKEN = "ravel-token-0123456789"


def make_env(tmp_path, stub: RavelStub, *, machines_readable: bool = True) -> dict:
    """A namespace `demo` with a fleet `web`, selected by the environment."""
    env = cli_environ(tmp_path / "config", url=stub.url, token=TOKEN)
    ok(run_inproc("namespaces", "create", "demo", env=env))
    env["VALYENT_NAMESPACE"] = "demo"
    ok(run_inproc("fleets", "create", "web", env=env))
    env.update(VALYENT_FLEET="web", VALYENT_REGION="fr", VALYENT_CPU_KIND="eco")
    return env


@pytest.fixture
def ravel():
    stub = RavelStub(bearer=f"Bearer {TOKEN}", follow_deadline=0.8)
    yield stub
    stub.close()


@pytest.fixture
def env(tmp_path, ravel) -> dict:
    return make_env(tmp_path, ravel)


def create_machine(env, *flags: str) -> str:
    return ok(run_inproc("machines", "create", "-q", "--image", "nginx", *flags, env=env)).stdout.strip()


def sdk(ravel: RavelStub, namespace: str = "demo"):
    from valyent_cli.api import Client

    return Client(TOKEN, endpoint=ravel.url, namespace=namespace)


# -- item 1: exec's timeout_ms is required ------------------------------------------------------------------------
def test_sdk_exec_always_sends_timeout_ms(env, ravel):
    machine = create_machine(env)
    with sdk(ravel) as client:
        result = client.machines.get("web", machine).exec(["echo", "hi"])
    assert result["stdout"] == "hi" and result["exit_code"] == 0
    assert ravel.bodies("POST", rf"/fleets/[^/]+/machines/{machine}/exec")[-1] == {"cmd": ["echo", "hi"],
                                                                                "timeout_ms": 30000}


# -- item 2: secrets' namespace from the query --------------------------------------------------------------------
def test_sdk_secrets_namespace_argument_goes_in_the_query(env, ravel):
    ok(run_inproc("namespaces", "create", "other", env=env))
    with sdk(ravel) as client:  # the client's namespace is demo
        client.secrets.create("api-key", "v1", namespace="other")
        assert [s["name"] for s in client.secrets.list(namespace="other")] == ["api-key"]
        assert client.secrets.list() == []
        assert client.secrets.set("api-key", "v2", namespace="other")[1] is False
        client.secrets.delete("api-key", namespace="other")
    assert ravel.secrets["other"] == {}
    assert all(q.get("namespace") == ["other"] for _m, p, q, _h, _b in ravel.requests if "/namespaces/other/" in p)


# -- item 3: the node's stop signals ------------------------------------------------------------------------------
def test_stop_signal_outside_the_nodes_list_refused_before_any_request(env, ravel):
    machine = create_machine(env)
    before = len(ravel.requests)
    refused = run_inproc("machines", "stop", machine, "--signal", "SIGUSR2", "--no-wait", env=env)
    assert refused.returncode == 2 and "SIGUSR2" in refused.stderr and "SIGPIPE" in refused.stderr
    assert len(ravel.requests) == before
    ok(run_inproc("machines", "stop", machine, "--signal", "SIGPIPE", env=env))
    assert ravel.bodies("POST", rf"/fleets/[^/]+/machines/{machine}/stop")[-1]["signal"] == "SIGPIPE"
    assert ravel.machines[machine]["state"] == "stopped"
    from valyent_cli.cli import complete

    assert {v for v, _ in complete.signals("")} == set(SIGNALS)


# -- item 5: waiting for `destroyed` on a destroyed machine -------------------------------------------------------
def test_wait_destroyed_on_a_destroyed_machine_is_success(env, ravel):
    machine = create_machine(env)
    ok(run_inproc("machines", "delete", machine, "--force", "--yes", env=env))
    waited = ok(run_inproc("machines", "wait", machine, "--state", "destroyed", "--timeout", "5s", env=env))
    assert "destroyed" in waited.stderr
    assert any(p.endswith(f"/{machine}/wait") for _m, p, _q, _h, _b in ravel.requests)  # the 404 was met
    with sdk(ravel) as client:
        client.machines.wait("web", machine, "destroyed", timeout=5)
        from valyent_cli.api import NotFound

        with pytest.raises(NotFound):  # any other state: still not found
            client.machines.wait("web", machine, "running", timeout=5)


# -- item 6: gateways by name -------------------------------------------------------------------------------------
def test_gateways_show_and_delete_by_name(env, ravel):
    created = json.loads(ok(run_inproc("gateways", "create", "--name", "front", "--port", "8080", "--json",
                                       env=env)).stdout)
    assert created["id"].startswith("gw_")
    shown = json.loads(ok(run_inproc("gateways", "show", "front", "--json", env=env)).stdout)
    assert shown["id"] == created["id"]
    ok(run_inproc("gateways", "delete", "front", "--yes", env=env))
    assert ravel.gateways == {}
    # the name never went to Ravel's broken lookup by name
    assert not [p for _m, p, _q, _h, _b in ravel.requests if p.endswith("/gateways/front")]


# -- item 12: events come in no order -----------------------------------------------------------------------------
def test_events_printed_oldest_first_whatever_order_they_come_in(env, ravel):
    machine = create_machine(env)  # the start watch reads the state from the newest event: it must find running
    ok(run_inproc("machines", "stop", machine, env=env))
    served = [e["type"] for e in reversed(ravel.machines[machine]["events"])]
    as_json = json.loads(ok(run_inproc("machines", "events", machine, "--json", env=env)).stdout)
    assert [e["type"] for e in as_json] == ["machine.created", "machine.start", "machine.started", "machine.stop",
                                            "machine.exited"]
    assert [e["type"] for e in as_json] != served  # the stand-in answers newest first
    table = ok(run_inproc("machines", "events", machine, env=env)).stdout.splitlines()[1:]
    assert [line.split()[1] for line in table] == [e["type"] for e in as_json]


# -- item 7: exec killed at its timeout, no stderr ----------------------------------------------------------------
def test_exec_killed_at_its_timeout_exits_124_and_says_no_stderr_comes(env, ravel):
    machine = create_machine(env)
    killed = run_inproc("machines", "exec", machine, "--timeout", "1s", "--", "sleep", "5", env=env)
    assert killed.returncode == 124, killed.stderr
    assert ravel.bodies("POST", rf"/fleets/[^/]+/machines/{machine}/exec")[-1]["timeout_ms"] == 1000
    assert "returns no stderr" in killed.stderr


# -- item 4: log lines say source "instance" ----------------------------------------------------------------------
@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_logs_source_filter_on_lines_that_name_no_stream(env, ravel, stream):
    machine = create_machine(env)
    ravel.add_logs(machine, ["one", "two"])  # runtime/logging/instance_logger.go: source "instance"
    shown = ok(run_inproc("logs", machine, "--source", stream, env=env))
    assert [line.split(" ", 1)[1] for line in shown.stdout.splitlines()] == ["one", "two"]
    assert shown.stderr.count("do not say which stream") == 1 and "instance" in shown.stderr
    ravel.add_logs(machine, ["real"], source="stderr")  # a server that does say: filtered as before
    other = "stderr" if stream == "stdout" else "stdout"
    again = ok(run_inproc("logs", machine, "--source", other, "--json", env=env)).stdout
    assert "real" not in again if other == "stdout" else "real" in again


# -- the Ravel of today: machine reads always fail (core/cluster/noop.go) -----------------------------------------
@pytest.fixture
def noop_reads(tmp_path):
    """Machine reads from the no-op cluster state (500, `null` lists), nodes found: commands go on by full id."""
    stub = RavelStub(bearer=f"Bearer {TOKEN}", follow_deadline=0.8, cluster_state="noop-reads")
    env = make_env(tmp_path, stub)
    yield stub, env
    stub.close()


def test_noop_cluster_state_exec_logs_stop_delete_by_full_id(noop_reads):
    ravel, env = noop_reads
    machine = create_machine(env)  # without -d: the start is watched through the events, then no read fails it
    assert ravel.machines[machine]["state"] == "running"
    ran = run_inproc("machines", "exec", machine, "--", "echo", "hi", env=env)
    assert ran.returncode == 0 and ran.stdout.strip() == "hi", ran.stderr
    assert ran.stderr.count("cannot read machine") == 1 and "full id" in ran.stderr
    ravel.add_logs(machine, ["hello"])
    assert ok(run_inproc("logs", machine, env=env)).stdout.rstrip().endswith("hello")
    ok(run_inproc("machines", "events", machine, env=env))
    ok(run_inproc("machines", "versions", machine, env=env))
    ok(run_inproc("machines", "stop", machine, env=env))
    assert ravel.machines[machine]["state"] == "stopped"
    ok(run_inproc("machines", "start", machine, env=env))
    ok(run_inproc("machines", "wait", machine, "--state", "running", "--timeout", "5s", env=env))
    ok(run_inproc("machines", "delete", machine, "--force", "--yes", env=env))
    assert ravel.machines[machine]["state"] == "destroyed"
    detached = ok(run_inproc("machines", "create", "-d", "-q", "--image", "nginx", env=env)).stdout.strip()
    assert detached in ravel.machines
    listed = ok(run_inproc("machines", "list", env=env))  # `null`: nothing to list
    assert detached not in listed.stdout


def test_noop_cluster_state_commands_that_need_the_read_say_why(noop_reads):
    ravel, env = noop_reads
    machine = create_machine(env, "--label", "app=web")
    shown = run_inproc("machines", "show", machine, env=env)
    assert shown.returncode == 1 and "cannot read machine" in shown.stderr and "events" in shown.stderr
    before = len(ravel.requests)
    labelled = run_inproc("machines", "label", machine, "tier=front", env=env)
    assert labelled.returncode == 1 and "nothing was changed" in labelled.stderr
    assert not [r for r in ravel.requests[before:] if r[0] == "PATCH"]
    assert ravel.machines[machine]["metadata"] == {"labels": {"app": "web"}}


# -- item 10: stop failures masked as a 500 -----------------------------------------------------------------------
def test_stop_of_a_machine_never_started_through_the_masked_500(noop_reads):
    ravel, env = noop_reads
    machine = ok(run_inproc("machines", "create", "-q", "--skip-start", "--image", "nginx", env=env)).stdout.strip()
    stopped = ok(run_inproc("machines", "stop", machine, env=env))
    assert "never started" in stopped.stderr
    stop_calls = [r for r in ravel.requests if r[0] == "POST" and r[1].endswith(f"/{machine}/stop")]
    assert stop_calls  # the masked 500 was met


def test_noop_cluster_state_as_ravel_wires_it(tmp_path):
    """ravel/ravel.go wires the no-op for nodes too: every call that reaches a node is a 500. The CLI still goes
    on by id, and reports the server's answer."""
    ravel = RavelStub(bearer=f"Bearer {TOKEN}", cluster_state="noop")
    try:
        env = make_env(tmp_path, ravel)
        failed = run_inproc("machines", "create", "-d", "--image", "nginx", env=env)
        assert failed.returncode == 1 and "Traceback" not in failed.stderr
        machine = ravel.add_machine("web")  # the row create left in the database
        ran = run_inproc("machines", "exec", machine, "--", "true", env=env)
        assert ran.returncode == 255 and "cannot read machine" in ran.stderr
        assert [r for r in ravel.requests if r[1].endswith(f"/{machine}/exec")]  # it did go on to the exec
        assert ok(run_inproc("machines", "versions", machine, "--json", env=env)).stdout.strip().startswith("[")
        assert ok(run_inproc("nodes", "list", "--json", env=env)).stdout.strip() == "[]"
    finally:
        ravel.close()


# -- item 11: the region of a self-hosted Ravel -------------------------------------------------------------------
def test_region_taken_from_the_nodes_when_none_is_configured(env, ravel):
    env = {k: v for k, v in env.items() if k != "VALYENT_REGION"}
    create_machine(env)
    assert ravel.bodies("POST", "/fleets/web/machines")[-1]["region"] == "fr"  # the one region of its nodes
    nodes_asked = sum(1 for r in ravel.requests if r[1] == "/nodes")
    create_machine({**env, "VALYENT_REGION": "fr"})  # configured: no extra request
    assert sum(1 for r in ravel.requests if r[1] == "/nodes") == nodes_asked
    ravel.nodes.append({"id": "node-2", "address": "10.0.0.2", "agent_port": 8080, "region": "de",
                        "heartbeated_at": "2026-01-01T00:00:00Z"})
    before = len(ravel.bodies("POST", "/fleets/web/machines"))
    several = run_inproc("machines", "create", "--image", "nginx", env=env)
    assert several.returncode == 2 and "de, fr" in several.stderr and "--region" in several.stderr
    assert len(ravel.bodies("POST", "/fleets/web/machines")) == before
    ravel.nodes[:] = [{"id": "local", "address": "127.0.0.1", "agent_port": 1, "region": "local"}]  # the sandbox's
    run_inproc("machines", "create", "--image", "nginx", env=env)
    assert ravel.bodies("POST", "/fleets/web/machines")[-1]["region"] == "gra-1"  # today's default kept


def test_region_on_a_ravel_that_lists_no_nodes(tmp_path):
    ravel = RavelStub(bearer=f"Bearer {TOKEN}", cluster_state="noop")  # core/cluster/noop.go: ListNodes is nil
    try:
        env = {k: v for k, v in make_env(tmp_path, ravel).items() if k != "VALYENT_REGION"}
        refused = run_inproc("machines", "create", "--image", "nginx", env=env)
        assert refused.returncode == 2 and "no nodes" in refused.stderr and "--region" in refused.stderr
        assert not ravel.bodies("POST", "/fleets/web/machines")
    finally:
        ravel.close()


# -- item 9: builds ----------------------------------------------------------------------------------------------
def build_dir(tmp_path):
    directory = tmp_path / "app"
    directory.mkdir(parents=True)
    (directory / "Dockerfile").write_text("FROM busybox\nCOPY . /app\n")
    return str(directory)


def test_build_needs_a_registry_and_takes_no_build_args_before_the_upload(env, ravel, tmp_path):
    directory = build_dir(tmp_path)
    refused = run_inproc("builds", "create", directory, "--image", "app", env=env)
    assert refused.returncode == 2 and "--registry" in refused.stderr
    args = run_inproc("builds", "create", directory, "--image", "app", "--registry", "reg.example", "--build-arg",
                      "A=1", env=env)
    assert args.returncode == 2 and "--build-arg" in args.stderr
    assert not [r for r in ravel.requests if r[0] == "POST" and "/builds" in r[1]]  # nothing uploaded


def test_build_followed_to_its_end_though_ravel_ends_the_stream_at_once(env, ravel, tmp_path):
    ravel.build_seconds = 2.5
    done = run_inproc("builds", "create", build_dir(tmp_path), "--image", "app", "--registry", "reg.example",
                      "--json", env=env)
    assert done.returncode == 0, done.stderr
    build = json.loads(done.stdout)
    assert build["status"] == "completed" and build["full_image"] == "reg.example/app:latest"
    assert "COMMIT reg.example/app:latest" in done.stderr and "polling" in done.stderr
    assert done.stderr.count("STEP 1/2") == 1  # each line once
    ravel.build_seconds = 2.5
    second = json.loads(ok(run_inproc("builds", "create", build_dir(tmp_path / "b"), "--image", "app", "--registry",
                                      "reg.example", "-d", "--json", env=env)).stdout)
    followed = ok(run_inproc("builds", "logs", second["id"], "-f", env=env))
    assert followed.stdout.splitlines() == ["STEP 1/2: FROM busybox", "STEP 2/2: COPY . /app",
                                           "COMMIT reg.example/app:latest"]


def test_build_unknown_id_and_prefix(env, ravel, tmp_path):
    ravel.build_seconds = 0
    build = json.loads(ok(run_inproc("builds", "create", build_dir(tmp_path), "--image", "app", "--registry",
                                     "reg.example", "--json", env=env)).stdout)
    unknown = run_inproc("builds", "show", "build_nope", env=env)
    assert unknown.returncode == 4 and "no build" in unknown.stderr
    shown = json.loads(ok(run_inproc("builds", "show", build["id"][:12], "--json", env=env)).stdout)
    assert shown["id"] == build["id"]


# -- item 8: exec output too large for a header -------------------------------------------------------------------
def test_exec_output_too_large_for_this_servers_exec(env, ravel):
    machine = create_machine(env)
    big = run_inproc("machines", "exec", machine, "--", "python3", "-c", "print('x' * 300_000)", env=env)
    assert big.returncode == 255 and big.stdout == ""
    assert "too large for this server's exec" in big.stderr and "valyent logs" in big.stderr
    assert "Receive buffer" not in big.stderr and "Traceback" not in big.stderr


# -- item 13: the SDK's types -------------------------------------------------------------------------------------
def test_sdk_types_follow_ravels_go_types(env, ravel):
    from valyent_cli import api
    from valyent_cli.api import types

    def optional(typed, key):  # NotRequired[...], or a total=False TypedDict (annotations are strings in types.py)
        return "NotRequired" in str(typed.__annotations__[key]) or not typed.__total__

    assert optional(types.CreateGatewayPayload, "name")  # api/gateways.go: `omitempty`
    assert {"secrets", "volumes", "health_check", "private_networks", "auto_destroy"} <= set(
        types.Workload.__annotations__)
    for typed in (types.CreateMachinePayload, types.CreateFleetPayload, types.FleetData, types.MachineData):
        assert "metadata" in typed.__annotations__ and optional(typed, "metadata")
    assert set(types.Metadata.__annotations__) == {"labels", "annotations"}
    # a payload built from the types, field by field, is one a stock Ravel accepts (huma's checks in the stand-in)
    payload: api.CreateMachinePayload = {
        "region": "fr", "metadata": {"labels": {"app": "web"}},
        "config": {"image": "nginx", "guest": {"cpu_kind": "eco", "cpus": 1, "memory_mb": 256}, "workload": {
            "secrets": [], "volumes": [api.VolumeMount(name="d", path="/d")],
            "health_check": api.HealthCheck(exec=["true"], interval=5),
            "private_networks": [api.PrivateNetwork(name="n", ip="10.0.1.2/24")]}}}
    gateway: api.CreateGatewayPayload = {"target_port": 8080}
    with sdk(ravel) as client:
        client.machines.create("web", payload)
        created = client.gateways.create("web", target_port=gateway["target_port"])
    assert created["name"].startswith("web-")
