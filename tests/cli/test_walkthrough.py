"""The seed README, end to end through the CLI against the sandbox, once as a person (tables) and once as a
script (--json): fleet, machine, live logs, exec, files, stop by signal, events, gateway, clean-up."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time

import pytest
from support.cli import ok, run_cli, run_inproc, spawn

WORKLOAD = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
    "i = 0\n"
    "while True:\n"
    "    i += 1\n"
    "    print('line', i, flush=True)\n"
    "    time.sleep(0.2)\n"
)


@pytest.mark.parametrize("mode", ["table", "json"])
def test_seed_readme_walkthrough(cli_env, tmp_path, mode):
    as_json = ["--json"] if mode == "json" else []
    fleet = f"walk-{mode}-{secrets.token_hex(3)}"
    env = {**cli_env}
    env.pop("VALYENT_FLEET", None)

    # Create a fleet.
    created = ok(run_inproc("fleets", "create", fleet, *as_json, env=env))
    if mode == "json":
        assert json.loads(created.stdout)["name"] == fleet
    else:
        assert fleet in created.stderr
    listed = ok(run_inproc("fleets", "list", *as_json, env=env))
    if mode == "json":
        assert fleet in [f["name"] for f in json.loads(listed.stdout)]
    else:
        assert fleet in listed.stdout
    env["VALYENT_FLEET"] = fleet

    # Create a machine whose command prints lines; by default create waits until it runs.
    result = ok(run_inproc("machines", "create", "--image", "python:3.11", "-e", "GREETING=hi",
                        *as_json, "--", sys.executable, "-c", WORKLOAD, env=env))
    if mode == "json":
        machine_id = json.loads(result.stdout)["id"]
    else:
        machine_id = next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("ID:"))
    assert machine_id and "\n" not in machine_id
    if mode == "json":
        assert json.loads(result.stdout)["state"] == "running"
    assert "running" in result.stderr

    ok(run_inproc("machines", "wait", machine_id[:10], "--state", "running", "--timeout", "30s", env=env))
    shown = ok(run_inproc("machines", "show", machine_id, *as_json, env=env))
    if mode == "json":
        assert json.loads(shown.stdout)["config"]["workload"]["env"] == ["GREETING=hi"]
    else:
        assert machine_id in shown.stdout and "running" in shown.stdout

    # Follow its logs and see lines arrive live.
    follow = spawn(["logs", machine_id, "-f", *as_json], env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   text=True)
    try:
        numbers: list[int] = []
        deadline = time.monotonic() + 20
        started = None
        while time.monotonic() < deadline:
            line = follow.stdout.readline()
            if not line:
                break
            message = json.loads(line)["message"] if mode == "json" else line
            if "line " in message:
                numbers.append(int(message.rsplit("line ", 1)[1].split()[0]))
                if started is None:
                    started = time.monotonic()
                elif time.monotonic() - started > 1.0 and len(numbers) > 3:
                    break
        assert numbers, "no log line reached the follower"
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    finally:
        follow.send_signal(signal.SIGINT)
        _, err = follow.communicate(timeout=15)
    assert follow.returncode == 130, err
    assert "Traceback" not in err

    # Exec with a non-zero exit code: streams apart, the code passed through.
    result = run_inproc("machines", "exec", machine_id, "--", "sh", "-c", "echo out; echo err >&2; exit 3", env=env)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out\n"
    assert "err" in result.stderr

    # Files: mkdir, put, ls, cat, stat, get, rm.
    local = tmp_path / "payload.bin"
    local.write_bytes(bytes(range(256)) * 64)
    ok(run_inproc("fs", "mkdir", machine_id, "/app/data", env=env))
    ok(run_inproc("fs", "put", machine_id, str(local), "/app/data/payload.bin", env=env))
    listing = ok(run_inproc("fs", "ls", machine_id, "/app/data", *as_json, env=env))
    if mode == "json":
        entry = next(e for e in json.loads(listing.stdout) if e["name"] == "payload.bin")
        assert entry["size"] == 256 * 64 and entry["is_dir"] is False
    else:
        assert "payload.bin" in listing.stdout
    cat = run_cli("fs", "cat", machine_id, "/app/data/payload.bin", env=env, text=False)
    assert cat.returncode == 0 and cat.stdout == local.read_bytes()
    stat = ok(run_inproc("fs", "stat", machine_id, "/app/data/payload.bin", *as_json, env=env))
    if mode == "json":
        assert json.loads(stat.stdout)["size"] == 256 * 64
    back = tmp_path / "back.bin"
    ok(run_inproc("fs", "get", machine_id, "/app/data/payload.bin", str(back), env=env))
    assert back.read_bytes() == local.read_bytes()
    ok(run_inproc("fs", "rm", machine_id, "-r", "/app/data", env=env))
    missing = run_inproc("fs", "stat", machine_id, "/app/data", env=env)
    assert missing.returncode == 4

    # Stop it by signal and read the exit code in its events.
    ok(run_inproc("machines", "stop", machine_id, "--signal", "SIGTERM", "--timeout", "10", env=env))
    events = ok(run_inproc("machines", "events", machine_id, *as_json, env=env))
    if mode == "json":
        exited = [e for e in json.loads(events.stdout) if e["type"] == "machine.exited"]
        assert exited and exited[-1]["payload"]["stopped"]["exit_code"] == 7
    else:
        assert "machine.exited" in events.stdout and "exit code 7" in events.stdout

    # A gateway: create, list, delete.
    gw = ok(run_inproc("gateways", "create", "--name", "web", "--port", "8080", *as_json, env=env))
    if mode == "json":
        assert json.loads(gw.stdout)["target_port"] == 8080
    gws = ok(run_inproc("gateways", "list", *as_json, env=env))
    if mode == "json":
        assert [g["name"] for g in json.loads(gws.stdout)] == ["web"]
    else:
        assert "web" in gws.stdout and "8080" in gws.stdout
    ok(run_inproc("gateways", "delete", "web", "--yes", env=env))
    assert json.loads(ok(run_inproc("gateways", "list", "--json", env=env)).stdout) == []

    # Delete the machine and the fleet.
    ok(run_inproc("machines", "delete", machine_id, "--yes", env=env))
    remaining = json.loads(ok(run_inproc("machines", "list", "--json", env=env)).stdout)
    assert machine_id not in [m["id"] for m in remaining]
    ok(run_inproc("fleets", "delete", fleet, "--yes", env=env))
    gone = run_inproc("fleets", "show", fleet, env=env)
    assert gone.returncode == 4
