"""Other words for commands, as docker and gh users type them (issue 24, item 19): `machines ls/rm`, `fleets rm`,
`gateways rm`, `machines logs ID`; they work as the command itself and stay out of the command lists."""

from __future__ import annotations

import json

from support.cli import ok, run_inproc


def test_ls_rm_and_logs_work_as_the_commands(one_machine):
    env, machine, client = one_machine
    listed = ok(run_inproc("machines", "ls", "-q", env=env))
    assert machine in listed.stdout.split()
    logs = run_inproc("machines", "logs", machine, "--json", env=env)
    assert logs.returncode == 0, logs.stderr
    assert all(json.loads(line) for line in logs.stdout.splitlines())
    ok(run_inproc("machines", "rm", machine, "--force", "--yes", env=env))
    assert machine not in ok(run_inproc("machines", "ls", "-q", env=env)).stdout


def test_fleets_rm_and_gateways_rm(fleet_env):
    env, client, fleet = fleet_env
    ok(run_inproc("gateways", "create", "--name", "gw1", "--port", "8080", env=env))
    ok(run_inproc("gateways", "rm", "gw1", "--yes", env=env))
    assert ok(run_inproc("gateways", "ls", "-q", env=env)).stdout == ""
    ok(run_inproc("fleets", "create", f"{fleet}-x", env=env))
    ok(run_inproc("fleets", "rm", f"{fleet}-x", "--yes", env=env))
    assert f"{fleet}-x" not in ok(run_inproc("fleets", "ls", env=env)).stdout


def test_aliases_stay_out_of_the_command_lists(cli_env):
    text = ok(run_inproc("machines", "--help", env=cli_env)).stdout
    assert " rm " not in text and " ls " not in text
    assert "`rm` for delete" in " ".join(ok(run_inproc("--help", env=cli_env)).stdout.split())
