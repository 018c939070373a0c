"""`valyent machines`, `fleets` and `gateways` against the sandbox: what people and scripts rely on."""

from __future__ import annotations

import json
import secrets
import sys

from support.cli import ok, run_inproc


SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def test_create_quiet_prints_only_the_id_and_list_shows_it(fleet_env):
    env, client, fleet = fleet_env
    result = ok(run_inproc("machines", "create", "-q", "--image", "nginx", env=env))
    machine_id = result.stdout.strip()
    assert result.stdout == machine_id + "\n"
    assert client.machines.get(fleet, machine_id)["state"] == "running"
    table = ok(run_inproc("machines", "list", env=env))
    assert machine_id in table.stdout  # never truncated
    assert table.stdout.splitlines()[0].split()[:2] == ["ID", "STATE"]
    ids = ok(run_inproc("machines", "list", "-q", env=env)).stdout.split()
    assert ids == [machine_id]
    data = json.loads(ok(run_inproc("machines", "list", "--json", env=env)).stdout)
    assert data == [dict(m) for m in client.machines.list(fleet)]


def test_create_detach_and_skip_start(fleet_env):
    env, client, fleet = fleet_env
    skipped = ok(run_inproc("machines", "create", "-q", "--image", "nginx", "--skip-start", env=env)).stdout.strip()
    assert client.machines.get(fleet, skipped)["state"] == "created"
    ok(run_inproc("machines", "start", skipped, env=env))
    assert client.machines.get(fleet, skipped)["state"] == "running"
    detached = ok(run_inproc("machines", "create", "-q", "-d", "--image", "nginx", env=env)).stdout.strip()
    client.machines.wait(fleet, detached, "running", 10)


def test_create_fails_with_the_machines_own_error(fleet_env):
    env, _, _ = fleet_env
    result = run_inproc("machines", "create", "--image", "x", "--restart", "never", "--", "/nonexistent/binary", env=env)
    assert result.returncode == 1, result.stderr
    assert "did not start" in result.stderr
    assert "/nonexistent/binary" in result.stderr or "not found" in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_create_reports_a_command_that_exits_at_once(fleet_env):
    env, _, _ = fleet_env
    result = run_inproc("machines", "create", "--image", "x", "--restart", "never", "--",
                     sys.executable, "-c", "import sys, time; time.sleep(0.3); sys.exit(3)", env=env)
    # It may be seen running before it exits; either it started (0) or it reports the exit (1), never a hang.
    assert result.returncode in (0, 1), result.stderr
    if result.returncode == 1:
        assert "exit code 3" in result.stderr


def test_create_of_a_one_shot_command_that_exits_0_succeeds_with_a_note(fleet_env):
    # The README's build example (CMD `echo built`): it ran and ended well. Not "did not start" (exit 1).
    env, client, fleet = fleet_env
    result = run_inproc("machines", "create", "--image", "x", "--restart", "never", "--", "echo", "built", env=env)
    assert result.returncode == 0, result.stderr
    assert "did not start" not in result.stderr
    if "exited 0" in result.stderr:  # seen exiting (else seen running, the moment before)
        assert "right after starting; for one-shot commands use `valyent machines run`" in result.stderr


def test_start_verdict_judges_a_crash_loop_from_its_events(fleet_env):
    # The events of a real crash loop (on-failure restarts of `exit 3`): failed, whatever state it is in right now.
    from valyent_cli.cli.exitstatus import ordered
    from valyent_cli.commands.machine_views import start_verdict
    from support.util import wait_until

    env, client, fleet = fleet_env
    machine_id = ok(run_inproc("machines", "create", "-q", "-d", "--image", "x", "--restart", "on-failure",
                               "--max-retries", "50", "--", "sh", "-c", "exit 3", env=env)).stdout.strip()
    events = wait_until(lambda: (ev := ordered(client.machines.events(fleet, machine_id)))
                        and sum(e["type"] == "machine.exited" for e in ev) >= 3 and ev, 30, message="three exits")
    outcome, reason = start_verdict(events)
    assert outcome == "failed" and "crash-looping" in reason and "exit code 3" in reason
    running = [e for e in events if e["type"] != "machine.exited"]  # never an exit seen: running
    assert start_verdict(running)[0] == "running"
    one_shot = [e for e in events if e["type"] != "machine.start" or not e["payload"]["start"]["is_restart"]]
    cut = next(i for i, e in enumerate(one_shot) if e["type"] == "machine.exited")
    first_exit = dict(one_shot[cut], payload={"stopped": {"exit_code": 0}})
    assert start_verdict([*one_shot[:cut], first_exit]) == ("exited", views_note())


def views_note() -> str:
    from valyent_cli.commands.machine_views import ONE_SHOT_NOTE

    return ONE_SHOT_NOTE


def test_start_of_a_machine_that_cannot_start_fails_at_once_with_its_reason(fleet_env):
    # Not a 60 s wait ending in exit 5: the failed start's own reason, exit 1. The SDK's wait raises it too.
    from valyent_cli.api import MachineFailed
    import pytest

    env, client, fleet = fleet_env
    created = run_inproc("machines", "create", "--image", "x", "--restart", "never", "--", "/nonexistent/binary", env=env)
    assert created.returncode == 1, created.stderr
    machine_id = created.stderr.split("Created machine ")[1].split()[0]
    result = run_inproc("machines", "start", machine_id, env=env)
    assert result.returncode == 1, result.stderr
    assert "cannot start" in result.stderr and "/nonexistent/binary" in result.stderr
    assert result.stderr.count("/nonexistent/binary") == 1
    with pytest.raises(MachineFailed) as info:
        client.machines.get(fleet, machine_id).wait("running", 30)
    assert "/nonexistent/binary" in info.value.reason


def test_one_rule_for_not_found_and_already_in_that_state(fleet_env):
    # not found: 4 everywhere (exec too, not 255); already running/stopped: a note, exit 0, for start as for stop
    env, client, fleet = fleet_env
    missing = run_inproc("machines", "exec", "01nosuchmachine", "--", "true", env=env)
    assert missing.returncode == 4, missing.stderr
    machine_id = ok(run_inproc("machines", "create", "-q", "--image", "x", "--", *SLEEPER, env=env)).stdout.strip()
    again = run_inproc("machines", "start", machine_id, env=env)
    assert again.returncode == 0, again.stderr
    assert f"Machine {machine_id} is already running: nothing to start" in again.stderr
    ok(run_inproc("machines", "stop", machine_id, env=env))
    stopped = run_inproc("machines", "stop", machine_id, env=env)
    assert stopped.returncode == 0 and "nothing to stop" in stopped.stderr


def test_config_file_and_flags_override_it(fleet_env, tmp_path):
    env, client, fleet = fleet_env
    config = tmp_path / "machine.toml"
    config.write_text(
        'region = "gra-1"\n[config]\nimage = "from-file"\n[config.guest]\ncpu_kind = "shared"\nmemory_mb = 256\ncpus = 1\n'
        '[config.workload]\nenv = ["A=file", "B=file"]\n'
    )
    result = ok(run_inproc("machines", "create", "--config", str(config), "--memory", "1gb", "-e", "A=flag", "--json",
                        "--", *SLEEPER, env=env))
    machine = json.loads(result.stdout)
    assert machine["config"]["image"] == "from-file"
    assert machine["config"]["guest"]["memory_mb"] == 1024
    assert sorted(machine["config"]["workload"]["env"]) == ["A=flag", "B=file"]


def test_project_file_gives_fleet_and_machine_defaults(fleet_env, tmp_path):
    env, client, fleet = fleet_env
    env = dict(env)
    env.pop("VALYENT_FLEET")
    project = tmp_path / "proj"
    (project / "sub").mkdir(parents=True)
    (project / "valyent.toml").write_text(
        f'fleet = "{fleet}"\n[machine]\nimage = "project-image"\nmemory = "256mb"\nenv = {{ FROM = "project" }}\n'
    )
    result = ok(run_inproc("machines", "create", "--json", "--", *SLEEPER, env=env, cwd=project / "sub"))
    machine = json.loads(result.stdout)
    assert machine["config"]["image"] == "project-image"
    assert machine["config"]["guest"]["memory_mb"] == 256
    assert machine["config"]["workload"]["env"] == ["FROM=project"]
    assert client.fleets.get(fleet)["id"] == machine["fleet"]


def test_fleet_precedence_flag_over_env(fleet_env, sandbox):
    env, client, fleet = fleet_env
    other = f"t-{secrets.token_hex(4)}"
    client.fleets.create(other)
    try:
        mid = ok(run_inproc("machines", "create", "-q", "--skip-start", "--image", "nginx", "--fleet", other,
                         env=env)).stdout.strip()
        assert [m["id"] for m in client.machines.list(other)] == [mid]
        assert client.machines.list(fleet) == []
        client.machines.delete(other, mid, force=True)
    finally:
        client.fleets.delete(other)


def test_no_fleet_without_terminal_is_a_usage_error(cli_env, tmp_path):
    env = {k: v for k, v in cli_env.items() if k != "VALYENT_FLEET"}
    result = run_inproc("machines", "list", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "--fleet" in result.stderr and "valyent fleets use" in result.stderr


def test_prefix_resolution_unique_ambiguous_and_missing(fleet_env):
    env, client, fleet = fleet_env
    ids = [ok(run_inproc("machines", "create", "-q", "--skip-start", "--image", "nginx", env=env)).stdout.strip()
           for _ in range(3)]
    # A unique prefix: the shortest prefix that only one id has.
    target = ids[0]
    prefix = next(target[:n] for n in range(1, len(target) + 1)
                  if sum(i.startswith(target[:n]) for i in ids) == 1)
    shown = json.loads(ok(run_inproc("machines", "show", prefix, "--json", env=env)).stdout)
    assert shown["id"] == target
    common = ""
    for chars in zip(*ids):
        if len(set(chars)) > 1:
            break
        common += chars[0]
    if common:
        result = run_inproc("machines", "show", common, env=env)
        assert result.returncode == 2
        assert all(i in result.stderr for i in ids)
    result = run_inproc("machines", "show", "zzzz-no-such", env=env)
    assert result.returncode == 4
    assert "zzzz-no-such" in result.stderr


def test_stop_start_restart_wait_and_several_at_once(fleet_env):
    env, client, fleet = fleet_env
    a = ok(run_inproc("machines", "create", "-q", "--image", "nginx", env=env)).stdout.strip()
    b = ok(run_inproc("machines", "create", "-q", "--image", "nginx", env=env)).stdout.strip()
    ok(run_inproc("machines", "stop", a, b, env=env))
    assert {client.machines.get(fleet, m)["state"] for m in (a, b)} == {"stopped"}
    ok(run_inproc("machines", "wait", a, "--state", "stopped", "--timeout", "5s", env=env))
    timed_out = run_inproc("machines", "wait", a, "--state", "running", "--timeout", "1", env=env)
    assert timed_out.returncode == 5
    assert "running" in timed_out.stderr
    ok(run_inproc("machines", "start", a, env=env))
    ok(run_inproc("machines", "restart", a, env=env))
    events = [e["type"] for e in client.machines.events(fleet, a)]
    assert events.count("machine.started") >= 3
    refused = run_inproc("machines", "delete", a, "--yes", env=env)
    assert refused.returncode == 1 and "force" in refused.stderr.lower()
    ok(run_inproc("machines", "delete", a, b, "--yes", "--force", env=env))
    assert client.machines.list(fleet) == []
    assert {m["id"] for m in client.machines.list(fleet, destroyed=True)} == {a, b}
    listed_all = ok(run_inproc("machines", "list", "--all", "-q", env=env)).stdout.split()
    assert set(listed_all) == {a, b}


def test_exec_streams_and_exit_codes(fleet_env):
    env, client, fleet = fleet_env
    mid = ok(run_inproc("machines", "create", "-q", "--image", "nginx", env=env)).stdout.strip()
    result = run_inproc("machines", "exec", mid, "--", "sh", "-c", "printf 'a\\nb\\n'; printf oops >&2; exit 42", env=env)
    assert result.returncode == 42
    assert result.stdout == "a\nb\n" and result.stderr == "oops"
    zero = run_inproc("machines", "exec", mid, "--", "true", env=env)
    assert zero.returncode == 0 and zero.stdout == ""
    with_json = run_inproc("machines", "exec", mid, "--json", "--", "sh", "-c", "echo x; exit 4", env=env)
    assert with_json.returncode == 4  # the remote code, as without --json (issue 14)
    as_json = json.loads(with_json.stdout)
    assert as_json == {"stdout": "x\n", "stderr": "", "exit_code": 4}
    missing = run_inproc("machines", "exec", "no-such-machine", "--", "true", env=env)
    assert missing.returncode == 4 and "no-such-machine" in missing.stderr  # not found: 4, as everywhere
    ok(run_inproc("machines", "stop", mid, env=env))
    not_running = run_inproc("machines", "exec", mid, "--", "true", env=env)
    assert not_running.returncode == 255 and "Traceback" not in not_running.stderr


def test_events_table_reads_the_payloads(fleet_env):
    env, client, fleet = fleet_env
    mid = ok(run_inproc("machines", "create", "-q", "--image", "x", "--", *SLEEPER, env=env)).stdout.strip()
    ok(run_inproc("machines", "stop", mid, "--signal", "SIGKILL", env=env))
    table = ok(run_inproc("machines", "events", mid, env=env)).stdout
    for kind in ("machine.created", "machine.start", "machine.started", "machine.stop", "machine.exited"):
        assert kind in table
    assert "SIGKILL" in table
    assert "exit code" in table


def test_gateway_enable_disable(fleet_env):
    env, client, fleet = fleet_env
    mid = ok(run_inproc("machines", "create", "-q", "--image", "nginx", "--enable-gateway", env=env)).stdout.strip()
    assert client.machines.get(fleet, mid).get("gateway_enabled") is True
    ok(run_inproc("machines", "disable-gateway", mid, env=env))
    assert client.machines.get(fleet, mid).get("gateway_enabled") is False
    ok(run_inproc("machines", "enable-gateway", mid, env=env))
    assert client.machines.get(fleet, mid).get("gateway_enabled") is True


def test_fleets_commands(cli_env, sandbox):
    env = dict(cli_env)
    name = f"f-{secrets.token_hex(4)}"
    ok(run_inproc("profiles", "create", "work", "--endpoint", sandbox.url, "--use", env=env))
    created = json.loads(ok(run_inproc("fleets", "create", name, "--json", env=env)).stdout)
    assert created["name"] == name and created["id"].startswith("fleet_")
    assert ok(run_inproc("fleets", "create", name + "-q", "-q", env=env)).stdout.strip().startswith("fleet_")
    dup = run_inproc("fleets", "create", name, env=env)
    assert dup.returncode == 1 and "exist" in dup.stderr.lower()
    shown = ok(run_inproc("fleets", "show", created["id"], env=env)).stdout
    assert name in shown and created["id"] in shown
    env.pop("VALYENT_FLEET", None)
    ok(run_inproc("fleets", "use", name, env=env))
    status = json.loads(ok(run_inproc("auth", "status", "--json", env=env)).stdout)
    assert status["fleet"] == name and status["sources"]["fleet"] == "profile"
    ok(run_inproc("fleets", "delete", name, name + "-q", "--yes", env=env))
    missing = run_inproc("fleets", "show", name, env=env)
    assert missing.returncode == 4


def test_gateways_show_and_errors(fleet_env):
    env, client, fleet = fleet_env
    gw = json.loads(ok(run_inproc("gateways", "create", "--name", "api", "--port", "3000", "--json", env=env)).stdout)
    assert gw["name"] == "api" and gw["target_port"] == 3000 and gw["protocol"]
    dup = run_inproc("gateways", "create", "--name", "api", "--port", "3001", env=env)
    assert dup.returncode == 1
    shown = ok(run_inproc("gateways", "show", "api", env=env)).stdout
    assert gw["id"] in shown and "3000" in shown
    assert ok(run_inproc("gateways", "list", "-q", env=env)).stdout.split() == [gw["id"]]
    ok(run_inproc("gateways", "delete", gw["id"], "--yes", env=env))
    assert run_inproc("gateways", "show", "api", env=env).returncode == 4


def test_nothing_configured_says_how_to_start(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("VALYENT_")}
    env["VALYENT_CONFIG_DIR"] = str(tmp_path / "config")
    result = run_inproc("machines", "list", env=env, cwd=tmp_path)
    assert result.returncode == 3
    assert "not logged in" in result.stderr and "valyent local start" in result.stderr


def test_every_time_option_and_key_takes_30_30s_and_2m(fleet_env, tmp_path):
    env, client, fleet = fleet_env
    body = json.loads(ok(run_inproc("machines", "create", "--image", "x", "--stop-timeout", "5s", "--dry-run",
                                    env=env)).stdout)
    assert body["config"]["stop_config"]["timeout"] == 5
    project = tmp_path / "proj"
    project.mkdir()
    (project / "valyent.toml").write_text('[machine]\nstop_timeout = "7s"\n')
    body = json.loads(ok(run_inproc("machines", "create", "--image", "x", "--dry-run", env=env, cwd=project)).stdout)
    assert body["config"]["stop_config"]["timeout"] == 7
    too_long = run_inproc("machines", "create", "--image", "x", "--stop-timeout", "1m", "--dry-run", env=env)
    assert too_long.returncode == 2 and "--stop-timeout" in too_long.stderr and "pydantic" not in too_long.stderr
    machine_id = ok(run_inproc("machines", "create", "-q", "--image", "x", "--", *SLEEPER, env=env)).stdout.strip()
    ok(run_inproc("machines", "stop", machine_id, "--timeout", "2s", env=env))
    stop = [e for e in client.machines.events(fleet, machine_id) if e["type"] == "machine.stop"][-1]
    assert stop["payload"]["stop"]["config"]["timeout"] == 2
    bad = run_inproc("machines", "stop", machine_id, "--timeout", "2 parsecs", env=env)
    assert bad.returncode == 2 and "--timeout" in bad.stderr
    ok(run_inproc("profiles", "create", "p", "--endpoint", "https://ravel.example", "--timeout", "1m", env=env))
    assert json.loads(ok(run_inproc("profiles", "show", "p", "--json", env=env)).stdout)["timeout"] == 60.0
    for value, seconds in (("30", 30.0), ("30s", 30.0), ("2m", 120.0)):
        ok(run_inproc("profiles", "set", "timeout", value, "--profile", "p", env=env))
        assert json.loads(ok(run_inproc("profiles", "show", "p", "--json", env=env)).stdout)["timeout"] == seconds


def test_health_as_of_now_its_value_in_events_and_the_last_checks_output(fleet_env):
    from support.util import wait_until

    env, client, fleet = fleet_env
    failing = ok(run_inproc("machines", "create", "-q", "--image", "x", "--health-cmd", "sh -c 'echo not ready yet; exit 1'",
                            "--health-interval", "1s", "--health-retries", "2", "--", *SLEEPER, env=env)).stdout.strip()
    passing = ok(run_inproc("machines", "create", "-q", "--image", "x", "--health-cmd", "true", "--health-interval", "1s",
                            "--", *SLEEPER, env=env)).stdout.strip()
    wait_until(lambda: client.machines.get(fleet, failing).get("health") == "unhealthy", 30, message="unhealthy")
    events = ok(run_inproc("machines", "events", failing, env=env)).stdout
    assert "unhealthy" in events and "not ready yet" in events  # the value, and what the check said
    shown = ok(run_inproc("machines", "show", failing, env=env)).stdout
    assert "Last check" in shown and "not ready yet" in shown
    waited = run_inproc("machines", "wait", failing, "--healthy", "--timeout", "1s", env=env)
    assert waited.returncode == 5 and "not ready yet" in waited.stderr, waited.stderr
    ok(run_inproc("machines", "wait", passing, "--healthy", "--timeout", "30s", env=env))
    ok(run_inproc("machines", "stop", passing, env=env))
    row = next(line for line in ok(run_inproc("machines", "list", env=env)).stdout.splitlines() if passing in line)
    assert "healthy" not in row.split()  # stopped: no health as of now (the API keeps the last value)
    assert "Health:" not in ok(run_inproc("machines", "show", passing, env=env)).stdout
