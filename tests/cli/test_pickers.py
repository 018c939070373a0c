"""The lists a terminal user picks a missing MACHINE or FLEET from (issue 24, item 23), on a real pseudo-terminal
against the real sandbox: a heading, the current one marked and taken by Enter, live machines first, rows aligned
past 9, a long list cut with a way to narrow it, bad input answered, and `machines exec -- CMD` offering the list."""

from __future__ import annotations

import json
import re
import secrets

from support.cli import ok, on_terminal, run_inproc
from support.env import cli_environ

from valyent_cli.cli.picker import PAGE


def _terminal(args: list[str], env: dict, **kwargs) -> tuple[int, str]:
    code, screen = on_terminal(args, env, columns=None, term="dumb", color=False, **kwargs)
    return code, screen.replace("\r", "")


def test_fleets_use_marks_the_current_fleet_and_enter_keeps_it(tmp_path, sandbox):
    env = cli_environ(tmp_path / "config")
    ok(run_inproc("profiles", "create", "sb", "--endpoint", sandbox.url, "--token-stdin", "--use", env=env,
                  input=sandbox.token))
    first, second = f"aa-{secrets.token_hex(3)}", f"zz-{secrets.token_hex(3)}"
    ok(run_inproc("fleets", "create", first, env=env))
    ok(run_inproc("fleets", "create", second, "--use", env=env))
    code, screen = _terminal(["fleets", "use"], env, typed=b"\n")
    assert code == 0, screen
    assert "Fleets (* the one in use; Enter keeps it):" in screen
    row = next(line for line in screen.splitlines() if second in line)
    number = re.match(r"\s*(\d+)\) \* ", row)
    assert number, screen
    assert f"Fleet [{number.group(1)}]:" in screen
    assert json.loads(ok(run_inproc("profiles", "show", "sb", "--json", env=env)).stdout)["fleet"] == second


def test_machines_live_first_aligned_cut_and_narrowed_by_prefix(fleet_env):
    env, client, fleet = fleet_env
    stopped = [client.machines.create(fleet, {"region": "gra-1", "skip_start": True, "config": {
        "image": "alpine", "guest": {"cpu_kind": "shared", "memory_mb": 256, "cpus": 1}}})["id"]
        for _ in range(PAGE + 1)]
    running = ok(run_inproc("machines", "create", "-q", "--image", "nginx", env=env)).stdout.strip()
    wanted = stopped[-1]
    code, screen = _terminal(["machines", "show"], env,
                             answers=((b"Machine [1]: ", b"nosuch\n"), (b"No machine matches", wanted.encode() + b"\n")))
    assert code == 0, screen
    assert f"Machines of fleet {fleet}, live first:" in screen
    rows = [line for line in screen.splitlines() if re.match(r"\s+\d+\) ", line)]
    assert running in rows[0] and "running" in rows[0]
    assert len({row.index("01") for row in rows}) == 1, rows  # ids in one column, from 1) to 15)
    assert f"... and {len(stopped) + 1 - PAGE} more" in screen
    assert "No machine matches 'nosuch'" in screen
    assert re.search(rf"ID:\s+{wanted}", screen), screen


def test_exec_with_only_a_command_offers_the_machines(fleet_env):
    env, _, _ = fleet_env
    running = ok(run_inproc("machines", "create", "-q", "--image", "nginx", env=env)).stdout.strip()
    code, screen = _terminal(["machines", "exec", "--", "echo", "picked", "-n"], env, typed=b"1\n")
    assert code == 0, screen
    assert running in screen and "picked -n" in screen
    without = run_inproc("machines", "exec", "--", "echo", "hi", "there", env=env)
    assert without.returncode == 2, without.stderr
    assert "missing MACHINE before `--`" in without.stderr


def test_a_typed_id_start_is_not_a_number(fleet_env):
    """Ids begin with digits (`01...`): a start with a leading zero narrows the list, it does not pick row 1."""
    env, client, fleet = fleet_env
    ids = [client.machines.create(fleet, {"region": "gra-1", "skip_start": True, "config": {
        "image": "alpine", "guest": {"cpu_kind": "shared", "memory_mb": 256, "cpus": 1}}})["id"] for _ in range(3)]
    code, screen = _terminal(["machines", "show"], env, answers=((b"Machine [1]: ", b"01\n"), (b"start with '01'", b"3\n")))
    assert code == 0, screen
    assert "3 machines start with '01':" in screen
    assert re.search(rf"ID:\s+{ids[2]}", screen), screen
