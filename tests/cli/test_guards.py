"""Behaviours a mutation run showed unguarded: each test fails if the behaviour it names is broken."""

from __future__ import annotations

import json
import sys
import time

from support.faultserver import Reply, cli_env_for
from support.cli import run_inproc

from valyent_cli.api.client import backoff_delay

DEADLINE = {"Code": "DEADLINE_EXCEEDED", "status": 408, "title": "Request Timeout", "detail": "deadline exceeded"}


def test_a_408_that_runs_out_of_retries_exits_5(fault_server, tmp_path):
    fault_server.handler = lambda request: Reply(408, json=DEADLINE)
    result = run_inproc("fleets", "list", env=cli_env_for(fault_server, tmp_path))
    assert result.returncode == 5, result.stderr
    assert fault_server.count("GET", "/v1/fleets") == 3  # the first try and two retries
    assert result.stdout == ""


def test_backoff_has_jitter():
    for attempt, cap in [(0, 0.5), (2, 2.0), (5, 8.0)]:
        delays = {backoff_delay(attempt) for _ in range(40)}
        assert len(delays) > 10, "every client would retry in lockstep"
        assert all(0.75 * cap <= d <= cap for d in delays)


def test_json_is_one_line_when_piped(cli_env):
    run_inproc("fleets", "create", "guards-json", env=cli_env)
    result = run_inproc("fleets", "list", "--json", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.endswith("\n")
    assert any(f["name"] == "guards-json" for f in json.loads(result.stdout))


def test_the_sandbox_listens_on_loopback_only(sandbox):
    """Every listening socket of the sandbox's port is bound to 127.0.0.1, never to all addresses."""
    port = int(sandbox.url.rsplit(":", 1)[1].split("/")[0])
    bound = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:  # LISTEN
                bound.append(address)
    assert bound == ["0100007F"], f"listening on {bound} (little-endian hex addresses)"


def test_stop_signal_sends_that_signal(cli_env):
    env = dict(cli_env, VALYENT_FLEET="guards-signal")
    run_inproc("fleets", "create", "guards-signal", env=env)
    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGUSR1, lambda *a: sys.exit(42))\n"
              "signal.signal(signal.SIGTERM, lambda *a: sys.exit(43))\n"
              "print('ready', flush=True)\n"
              "time.sleep(60)\n")
    created = run_inproc("machines", "create", "-q", "--image", "python", "--entrypoint", sys.executable, "--",
                      "-c", script, env=env)
    assert created.returncode == 0, created.stderr
    machine = created.stdout.strip()
    deadline = time.monotonic() + 30
    while "ready" not in run_inproc("logs", machine, env=env).stdout:
        assert time.monotonic() < deadline, "the workload never got ready"
        time.sleep(0.2)
    stopped = run_inproc("machines", "stop", machine, "--signal", "SIGUSR1", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert run_inproc("machines", "wait", machine, "--state", "stopped", "--timeout", "30s", env=env).returncode == 0
    events = json.loads(run_inproc("machines", "events", machine, "--json", env=env).stdout)
    exits = [e["payload"]["stopped"]["exit_code"] for e in events if e["type"] == "machine.exited"]
    assert exits == [42]
    run_inproc("machines", "delete", machine, "--yes", "--force", env=env)
