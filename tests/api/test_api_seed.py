"""The seed README (the official TypeScript SDK's), every example translated to Python, run against the real local
sandbox. Each test follows one section of the README, in its order; the comments quote the TypeScript."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import uuid

import pytest
from support.cli import REPO

from valyent_cli.api import (
    Client,
    FetchErrorWithPayload,
    GuestConfig,
    MachineConfig,
    MachineStatus,
    Workload,
    errors,
)


def unique(name: str) -> str:
    # The sandbox is shared by the whole test session: the seed's names get a suffix to stay apart.
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(sandbox):
    # const client = new Client('your-api-token');   (pointed at the sandbox instead of the cloud)
    with Client(sandbox.token, endpoint=sandbox.url, initd_endpoint=sandbox.initd) as c:
        yield c


@pytest.fixture
def cleanup(client):
    """Fleets created by a test; everything in them is destroyed afterwards (Best Practices 1: clean up)."""
    fleets: list[str] = []
    yield fleets
    for fleet in fleets:
        try:
            for gateway in client.gateways.list(fleet):
                gateway.delete()
            for machine in client.machines.list(fleet):
                machine.delete(force=True)
            for machine in client.machines.list(fleet):
                machine.wait("destroyed", 30)
            client.fleets.delete(fleet)
        except errors.NotFound:
            pass
    for fleet in fleets:
        with pytest.raises(errors.NotFound):
            client.fleets.get(fleet)


@pytest.fixture
def fleet(client, cleanup):
    fleet = client.fleets.create({"name": unique("fleet-id")})
    cleanup.append(fleet.id)
    return fleet


def test_quick_start(client, cleanup):
    # const fleet = await client.fleets.create({ name: 'my-fleet' });
    fleet = client.fleets.create({"name": unique("my-fleet")})
    cleanup.append(fleet.id)
    assert fleet.id and fleet.name.startswith("my-fleet-") and fleet.status == "active"

    # const machine = await client.machines.create(fleet.id, {region: 'gra-1', config: {image: 'nginx:latest',
    #   guest: {cpu_kind: 'shared', memory_mb: 512, cpus: 1}, workload: {env: ['PORT=8080']}}});
    machine = client.machines.create(
        fleet.id,
        {
            "region": "gra-1",
            "config": {
                "image": "nginx:latest",
                "guest": {"cpu_kind": "shared", "memory_mb": 512, "cpus": 1},
                "workload": {"env": ["PORT=8080"]},
            },
        },
    )
    assert machine.id and machine.fleet == fleet.id and machine.region == "gra-1"
    assert machine.config["image"] == "nginx:latest"
    assert machine.config["workload"]["env"] == ["PORT=8080"]
    machine.wait("running", 60)
    assert client.machines.get(fleet.id, machine.id).state == "running"


def test_fleets(client, cleanup):
    # const fleet = await client.fleets.create({ name: 'production-fleet' });
    fleet = client.fleets.create({"name": unique("production-fleet")})
    cleanup.append(fleet.id)
    # const fleets = await client.fleets.list();
    fleets = client.fleets.list()
    assert fleet.id in [f.id for f in fleets]
    # const fleet = await client.fleets.get('fleet-id');   (by id, and by name)
    assert client.fleets.get(fleet.id) == fleet
    assert client.fleets.get(fleet.name).id == fleet.id
    # await client.fleets.delete('fleet-id');
    client.fleets.delete(fleet.id)
    with pytest.raises(errors.NotFound):
        client.fleets.get(fleet.id)
    assert fleet.id not in [f.id for f in client.fleets.list()]


def test_machines(client, fleet):
    # const machine = await client.machines.create('fleet-id', {region: 'us-east-1', config: {image:
    #   'my-image:latest', guest: {cpu_kind: 'shared', memory_mb: 1024, cpus: 2}, workload: {env: ['KEY=value'],
    #   restart: {policy: 'always', max_retries: 3}}}});
    # skip_start added: the README goes on to start the machine, and starting a running machine is refused
    # (FAILED_PRECONDITION) by Ravel and by the sandbox alike.
    created = client.machines.create(
        fleet.id,
        {
            "region": "us-east-1",
            "config": {
                "image": "my-image:latest",
                "guest": {"cpu_kind": "shared", "memory_mb": 1024, "cpus": 2},
                "workload": {"env": ["KEY=value"], "restart": {"policy": "always", "max_retries": 3}},
            },
            "skip_start": True,
        },
    )
    assert created.config["workload"]["restart"] == {"policy": "always", "max_retries": 3}
    assert created.state in ("created", "stopped")

    # const machines = await client.machines.list('fleet-id');
    machines = client.machines.list(fleet.id)
    assert [m.id for m in machines] == [created.id]

    # const machine = await client.machines.get('fleet-id', 'machine-id');
    machine = client.machines.get(fleet.id, created.id)
    assert machine.id == created.id and machine.region == "us-east-1"

    # await machine.start();
    machine.start()
    machine.wait("running", 60)
    with pytest.raises(errors.BadRequest) as info:  # what the skip_start above avoids
        machine.start()
    assert info.value.code == "FAILED_PRECONDITION"

    # await machine.stop({ timeout: 30, signal: 'SIGTERM' });
    machine.stop({"timeout": 30, "signal": "SIGTERM"})
    machine.wait("stopped", 60)
    stop_events = [e for e in machine.events() if e["type"] == "machine.stop"]
    assert stop_events[-1]["payload"]["stop"]["config"] == {"timeout": 30, "signal": "SIGTERM"}

    # await machine.delete();
    machine.delete()
    machine.wait("destroyed", 60)
    assert client.machines.list(fleet.id) == []
    assert [m.id for m in client.machines.list(fleet.id, destroyed=True)] == [machine.id]


def test_machine_configuration_types(client, fleet):
    """The README's configuration reference, built with the exported types, every optional field set."""
    guest: GuestConfig = {"cpu_kind": "shared", "memory_mb": 256, "cpus": 1}
    workload: Workload = {
        "env": ["GREETING=hello"],
        "restart": {"policy": "never"},
        "init": {"cmd": ["sh", "-c", "echo $GREETING; sleep 30"], "user": "root"},
    }
    config: MachineConfig = {"image": "alpine:3", "guest": guest, "workload": workload,
                             "stop_config": {"timeout": 5, "signal": "SIGTERM"}}
    # **auto_destroy** (boolean) as the README lists it, beside workload: the client sends it inside workload.
    config["auto_destroy"] = True  # type: ignore[typeddict-unknown-key]
    machine = client.machines.create(fleet.id, {"region": "gra-1", "config": config})
    assert machine.config["workload"]["auto_destroy"] is True
    assert machine.config["stop_config"] == {"timeout": 5, "signal": "SIGTERM"}
    machine.wait("running", 60)
    # auto_destroy: stopping it destroys it.
    machine.stop()
    machine.wait("destroyed", 60)


def test_gateways(client, fleet):
    # const gateway = await client.gateways.create('fleet-id', {name: 'web-gateway', target_port: 8080});
    gateway = client.gateways.create(fleet.id, {"name": "web-gateway", "target_port": 8080})
    assert gateway.name == "web-gateway" and gateway.target_port == 8080 and gateway.fleet_id == fleet.id
    # const gateways = await client.gateways.list('fleet-id');
    assert [g.id for g in client.gateways.list(fleet.id)] == [gateway.id]
    # const gateway = await client.gateways.get('fleet-id', 'gateway-id');
    assert client.gateways.get(fleet.id, gateway.id) == gateway
    # await client.gateways.delete('fleet-id', 'gateway-id');
    client.gateways.delete(fleet.id, gateway.id)
    assert client.gateways.list(fleet.id) == []
    with pytest.raises(errors.NotFound):
        client.gateways.get(fleet.id, gateway.id)


@pytest.fixture
def machine(client, fleet):
    machine = client.machines.create(fleet.id, {
        "region": "gra-1",
        "config": {"image": "nginx:latest", "guest": {"cpu_kind": "shared", "memory_mb": 512, "cpus": 1}},
    })
    machine.wait("running", 60)
    return machine


def test_filesystem_operations(machine):
    fs = machine.fs
    # Something to look at first (the README's examples read an existing /app).
    fs.write("/app/config.json", b'{"port": 8080}')
    fs.write("/app/temp/scratch.txt", io.BytesIO(b"scratch"))  # parents created, streamed from a file object
    fs.write("/app/logs/app.log", "started\n")

    # const entries = await machine.fs.ls('/app');
    entries = fs.ls("/app")
    assert sorted((e["name"], e["is_dir"]) for e in entries) == [("config.json", False), ("logs", True), ("temp", True)]
    assert {e["path"] for e in entries} == {"/app/config.json", "/app/logs", "/app/temp"}

    # await machine.fs.mkdir('/app/data');
    fs.mkdir("/app/data")
    assert fs.stat("/app/data")["is_dir"] is True

    # const content = await machine.fs.readFile('/app/config.json');
    assert fs.read_file("/app/config.json") == b'{"port": 8080}'
    assert fs.read("/app/config.json") == b'{"port": 8080}'

    # await machine.fs.rm('/app/temp');
    fs.rm("/app/temp")
    with pytest.raises(errors.NotFound):
        fs.stat("/app/temp")

    # await machine.fs.stat('/app/logs');
    info = fs.stat("/app/logs")
    assert info["name"] == "logs" and info["is_dir"] is True and isinstance(info["mod_time"], int)

    # Beyond the README: a streamed download, and the errors of a missing file.
    sink = io.BytesIO()
    assert fs.download("/app/logs/app.log", sink) == len(b"started\n") and sink.getvalue() == b"started\n"
    with pytest.raises(errors.NotFound):
        fs.read("/app/nope")
    with pytest.raises(errors.NotFound):
        fs.ls("/app/nope")


def test_filesystem_names_that_need_encoding(machine):
    path = "/app/a dir/with & and # and ?.txt"
    machine.fs.write(path, b"odd")
    assert machine.fs.read(path) == b"odd"
    assert [e["name"] for e in machine.fs.ls("/app/a dir")] == ["with & and # and ?.txt"]
    assert machine.fs.stat(path)["size"] == 3
    machine.fs.rm("/app/a dir")


def running_shell(client, fleet, script: str):
    """A running alpine machine of ``fleet`` whose command is `sh -c SCRIPT`."""
    machine = client.machines.create(fleet.id, {
        "region": "gra-1",
        "config": {
            "image": "alpine:3",
            "guest": {"cpu_kind": "shared", "memory_mb": 256, "cpus": 1},
            "workload": {"init": {"cmd": ["sh", "-c", script]}},
        },
    })
    machine.wait("running", 60)
    return machine


def test_logs_and_events(client, fleet):
    machine = running_shell(client, fleet, "for i in 1 2 3 4 5; do echo line-$i; sleep 0.05; done; sleep 60")

    # for await (const log of client.machines.getLogsStream('fleet-id', 'machine-id')) { console.log(log.message); }
    seen: list[str] = []
    for log in client.machines.get_logs_stream(fleet.id, machine.id, idle_timeout=10, max_failures=1):
        seen.append(log["message"])
        if log["message"] == "line-5":
            break  # stop following: the connection is closed
    assert seen == [f"line-{i}" for i in range(1, 6)]

    # const logs = await machine.getLogs();
    logs = machine.get_logs()
    assert [e["message"] for e in logs] == seen
    assert all(e["source"] == "stdout" and e["instance_id"] == machine.instance_id for e in logs)

    # const events = await machine.listEvents();
    events = machine.list_events()
    types = [e["type"] for e in events]
    assert types[:2] == ["machine.created", "machine.prepare"] and "machine.started" in types
    assert all(e["machine_id"] == machine.id for e in events)


def test_live_stream_sees_lines_as_they_are_written(client, fleet):
    machine = running_shell(client, fleet, "echo first; sleep 1; echo second; sleep 60")
    arrivals: dict[str, float] = {}
    for log in machine.follow_logs(idle_timeout=10, max_failures=1):
        arrivals[log["message"]] = time.monotonic()
        if log["message"] == "second":
            break
    assert list(arrivals) == ["first", "second"]
    assert arrivals["second"] - arrivals["first"] > 0.3  # "first" came while the machine was still sleeping


def test_machine_states_wait(client, fleet):
    # await machine.wait('running', 60);
    machine = client.machines.create(fleet.id, {
        "region": "gra-1",
        "config": {"image": "nginx:latest", "guest": {"cpu_kind": "shared", "memory_mb": 512, "cpus": 1}},
        "skip_start": True,
    })
    with pytest.raises(errors.TimeoutError):
        machine.wait(MachineStatus.RUNNING, 1)  # never started: the long poll ends, the wait times out
    machine.start()
    machine.wait(MachineStatus.RUNNING, 60)
    assert machine.refresh().state == MachineStatus.RUNNING
    assert {s.value for s in MachineStatus} == {"created", "preparing", "starting", "running", "stopping", "stopped",
                                                  "destroying", "destroyed"}


def test_error_handling(client, fleet):
    # try { await client.machines.create(/* ... */); } catch (error) { if (error instanceof FetchErrorWithPayload)
    #   { console.error('API Error:', error.message); console.error('Error Details:', error.payload); } }
    try:
        client.machines.create(fleet.id, {"region": "gra-1", "config": {"image": "nginx:latest",
                                                                        "guest": {"cpu_kind": "shared", "memory_mb": 0, "cpus": 1}}})
    except FetchErrorWithPayload as error:
        assert error.status == 400 and error.code == "INVALID_ARGUMENT"
        assert "memory_mb" in error.message
        assert isinstance(error.payload, dict) and error.payload["detail"] == error.message
        assert error.payload["errors"][0]["message"]
    else:
        pytest.fail("a machine with 0 MB of memory was accepted")
    with pytest.raises(FetchErrorWithPayload) as info:
        client.machines.get(fleet.id, "no-such-machine")
    assert isinstance(info.value, errors.NotFound) and info.value.payload["Code"] == "NOT_FOUND"
    assert client.machines.list(fleet.id) == []


def test_best_practices_cleanup(client, fleet):
    machine = client.machines.create(fleet.id, {
        "region": "gra-1",
        "config": {"image": "nginx:latest", "guest": {"cpu_kind": "shared", "memory_mb": 512, "cpus": 1}},
    })
    machine.wait("running", 60)
    assert machine.refresh().state == "running"
    # await machine.stop(); await machine.delete();
    machine.stop()
    machine.wait("stopped", 60)
    assert machine.refresh().state == "stopped"
    assert [e["type"] for e in client.machines.events(fleet.id, machine.id)][-1] == "machine.exited"
    machine.delete()
    machine.wait("destroyed", 60)
    assert client.machines.list(fleet.id) == []  # gone from the fleet...
    assert [m.id for m in client.machines.list(fleet.id, destroyed=True)] == [machine.id]  # ...kept as destroyed


def test_beyond_the_readme_exec_gateway_toggle_and_namespace(client, sandbox, fleet, machine):
    result = machine.exec(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout_ms=10_000)
    assert result == {"stdout": "out\n", "stderr": "err\n", "exit_code": 3}
    assert machine.fs.exec(["echo", "hi"])["stdout"] == "hi\n"
    machine.enable_gateway()
    assert machine.refresh().gateway_enabled is True
    machine.disable_gateway()
    assert machine.refresh().gateway_enabled is False
    # The same calls with ?namespace= on every request.
    with Client(sandbox.token, endpoint=sandbox.url, namespace=fleet.namespace, initd_endpoint=sandbox.initd) as ns:
        assert machine.id in [m.id for m in ns.machines.list(fleet.id)]
        assert ns.fs(machine.id).status() == {"ok": True}


def test_wrong_token_is_an_auth_error(sandbox):
    with Client("not-the-token", endpoint=sandbox.url, max_retries=0) as bad:
        with pytest.raises(errors.AuthError) as info:
            bad.fleets.list()
    assert info.value.status == 401


def test_import_pulls_neither_typer_nor_rich():
    code = "import valyent_cli.api, sys; assert 'typer' not in sys.modules and 'rich' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
