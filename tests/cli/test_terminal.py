"""What people see on a terminal: a real pseudo-terminal, so the CLI takes its terminal paths (rich tables,
colour, the spinner), against the sandbox."""

from __future__ import annotations

import re
import secrets

import pytest

from support.cli import ANSI, on_terminal

from valyent_cli.api import Client


@pytest.fixture()
def busy_fleet(cli_env, sandbox):
    name = f"tty-{secrets.token_hex(3)}"
    client = Client(sandbox.token, endpoint=sandbox.url, initd_endpoint=sandbox.initd)
    client.fleets.create(name)
    payload = {"region": "gra-1", "config": {"image": "registry.example.com/team/very-long-image-name:2024.11.29",
                                             "guest": {"cpu_kind": "shared", "memory_mb": 256, "cpus": 1}},
               "skip_start": True}
    ids = [client.machines.create(name, payload)["id"] for _ in range(3)]
    yield {**cli_env, "VALYENT_FLEET": name}, ids
    for machine_id in ids:
        client.machines.delete(name, machine_id, force=True)
    client.fleets.delete(name)
    client.close()


@pytest.mark.parametrize("columns", [60, 120])
def test_table_on_a_terminal_keeps_ids_whole_and_colours_states(busy_fleet, columns):
    env, ids = busy_fleet
    code, screen = on_terminal(["machines", "list"], env, columns=columns)
    assert code == 0, screen
    assert "\x1b[" in screen  # colour on a terminal
    text = ANSI.sub("", screen)
    for machine_id in ids:
        assert machine_id in text  # never cut, never folded
    assert "created" in text


def test_no_color_on_a_terminal(busy_fleet):
    env, _ = busy_fleet
    code, screen = on_terminal(["--no-color", "machines", "list"], env)
    assert code == 0 and "\x1b[3" not in screen


def test_create_on_a_terminal_shows_its_events_and_the_machine(cli_env):
    code, screen = on_terminal(["machines", "create", "--image", "nginx", "--fleet", "default"], cli_env, columns=120)
    text = ANSI.sub("", screen)
    assert code == 0, text
    assert "machine.started -> running" in text and "State:" in text and "running" in text
    machine_id = re.search(r"ID:\s+(\S+)", text).group(1)
    code, _ = on_terminal(["machines", "delete", machine_id, "--force", "--yes", "--fleet", "default"], cli_env)
    assert code == 0


# issue 24, item 10: at 80 columns, low-value columns go before a value people need is cut; never a URL or an id
def _screen_lines(screen: str) -> list[str]:
    return [line for line in ANSI.sub("", screen).replace("\r", "").splitlines() if line.strip()]


def test_tables_at_80_columns_drop_low_value_columns_before_cutting(fleet_env):
    env, client, fleet = fleet_env
    image = "registry.example.com/team/app:2024.11"
    machine = client.machines.create(fleet, {"region": "gra-1", "skip_start": True, "config": {
        "image": image, "guest": {"cpu_kind": "shared", "memory_mb": 256, "cpus": 1}}})["id"]
    for command in (["machines", "list"], ["machines", "versions", machine]):
        code, screen = on_terminal(command, env, columns=80)
        assert code == 0, screen
        lines = _screen_lines(screen)
        assert any(image in line for line in lines), lines  # GUEST and REGION (resources) went instead
        assert all(len(line) <= 80 for line in lines), lines
        assert machine in screen or command[1] == "versions"

    gateway = client.gateways.create(fleet, name="web-frontend", target_port=8080)
    code, screen = on_terminal(["gateways", "list"], env, columns=80)
    assert code == 0, screen
    lines = _screen_lines(screen)
    url = gateway.get("url")
    assert url and any(gateway["id"] in line and url in line for line in lines), lines
    assert all(len(line) <= 80 for line in lines), lines


def test_events_at_80_columns_keep_types_and_wrap_details(fleet_env):
    from support.util import wait_until

    env, client, fleet = fleet_env
    program = "/no/such/program-with-a-rather-long-name-for-the-details"
    machine = client.machines.create(fleet, {"region": "gra-1", "config": {
        "image": "alpine", "guest": {"cpu_kind": "shared", "memory_mb": 256, "cpus": 1},
        "workload": {"init": {"cmd": [program]}}}})["id"]
    wait_until(lambda: any(e.get("type") == "machine.start_failed" for e in client.machines.events(fleet, machine)))
    code, screen = on_terminal(["machines", "events", machine], env, columns=80)
    assert code == 0, screen
    lines = _screen_lines(screen)
    assert all(len(line) <= 80 for line in lines), lines
    assert "…" not in "".join(lines), lines
    assert any("machine.start_failed" in line for line in lines), lines
    assert "$PATH" in "".join(lines)  # the details, whole, over lines
    assert not any(re.search(r"\d{4}-\d\d-\d\dT", line) for line in lines), lines  # one day: the time of day


# issue 24, item 24: deleting a running machine on a terminal says so in the question, and does what it asks
def test_delete_of_a_running_machine_asks_to_stop_it_first(fleet_env):
    from support.cli import ok, run_inproc

    env, client, fleet = fleet_env
    machine = ok(run_inproc("machines", "create", "-q", "--image", "nginx", env=env)).stdout.strip()
    code, screen = on_terminal(["machines", "delete", machine], env, columns=None, term="dumb", color=False,
                               answers=((b"[y/N]", b"y\n"),))
    screen = screen.replace("\r", "")
    assert code == 0, screen
    assert f"{machine} is running. Stop and delete machine {machine}?" in screen
    assert "--force" not in screen
    assert client.machines.get(fleet, machine).get("state") in ("destroying", "destroyed")
