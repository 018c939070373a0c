"""Rough edges of everyday commands (issue 14's correctness sweep, one test per item, numbered as there), against
the real sandbox through the real CLI."""

from __future__ import annotations

import json
import os
import re
import secrets
import sys

import pytest

from support.cli import ok, on_terminal, run_cli, run_inproc
from support.env import cli_environ, free_port

from valyent_cli.api import Client


# 1. a machine that exits during start fails create, whatever its restart policy
@pytest.mark.parametrize("restart", ["never", "always"])
def test_create_fails_when_the_command_exits_at_once(fleet_env, restart):
    env, _, _ = fleet_env
    for _ in range(3):
        result = run_inproc("machines", "create", "-q", "--image", "alpine", "--restart", restart, "--",
                         "sh", "-c", "echo dying >&2; exit 3", env=env)
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        assert "exit code 3" in result.stderr
        assert "dying" in result.stderr  # its last log lines


def test_create_fails_when_the_port_is_taken(fleet_env):
    env, _, _ = fleet_env
    port = str(free_port())
    server = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", port]
    ok(run_inproc("machines", "create", "-q", "--image", "python", "--", *server, env=env))
    second = run_inproc("machines", "create", "-q", "--image", "python", "--", *server, env=env)
    # Judged from the events (issue 24 item 5): the exit is reported when create sees it (exit 1, the machine's
    # words); a start seen running the moment before it failed is exit 0, and the machine then stops with it.
    assert second.returncode in (0, 1), second.stderr
    if second.returncode == 1:
        assert "Address already in use" in second.stderr
    else:
        from support.util import wait_until

        mid = second.stdout.strip()
        wait_until(lambda: "Address already in use" in run_inproc("logs", mid, env=env).stdout, 20,
                   message="the second server's failure in its log")


# 2, 3. the local profile keeps its fleet and knows its sandbox's data dir
@pytest.fixture()
def local_env(tmp_path):
    from valyent_cli.local import daemon

    env = cli_environ(tmp_path / "config", XDG_DATA_HOME=str(tmp_path / "xdg"))
    yield env
    daemon.stop(tmp_path / "custom")  # whatever a failed test left running
    daemon.stop(tmp_path / "xdg" / "valyent" / "local")


def test_local_start_keeps_the_fleet_and_stop_finds_a_custom_data_dir(local_env, tmp_path):
    from support.env import free_port

    custom = tmp_path / "custom"
    ok(run_inproc("local", "start", "--data-dir", str(custom), "--port", str(free_port()), env=local_env))
    ok(run_inproc("fleets", "create", "web", "--use", env=local_env))
    again = ok(run_inproc("local", "start", env=local_env))
    assert "already running" in again.stderr  # the same sandbox, found through the profile
    assert json.loads(ok(run_inproc("profiles", "show", "local", "--json", env=local_env)).stdout)["fleet"] == "web"
    status = json.loads(ok(run_inproc("local", "status", "--json", env=local_env)).stdout)
    assert status["running"] is True and status["data_dir"] == str(custom)
    stopped = ok(run_inproc("local", "stop", env=local_env))
    assert "Stopped the local sandbox" in stopped.stderr
    down = run_inproc("local", "status", "--json", env=local_env)
    assert down.returncode == 3 and json.loads(down.stdout)["running"] is False
    # A restart keeps the fleet while the sandbox has it
    ok(run_inproc("local", "start", env=local_env))
    assert json.loads(ok(run_inproc("profiles", "show", "local", "--json", env=local_env)).stdout)["fleet"] == "web"
    ok(run_inproc("local", "stop", env=local_env))


SLEEPER = ["sleep", "600"]


def create(env) -> str:
    return ok(run_inproc("machines", "create", "-q", "--image", "alpine", "--", *SLEEPER, env=env)).stdout.strip()


# 4. wait's hint names --timeout
def test_wait_timeout_hint_names_the_flag(fleet_env):
    env, _, _ = fleet_env
    machine = create(env)
    result = run_inproc("machines", "wait", machine, "--state", "stopped", "--timeout", "1s", env=env)
    assert result.returncode == 5
    assert "--timeout" in result.stderr and "profile key" not in result.stderr


# 5. one error line, in the CLI's words
def test_delete_running_says_it_once_with_force(fleet_env):
    env, _, fleet = fleet_env
    machine = create(env)
    result = run_inproc("machines", "delete", machine, "--yes", env=env)
    assert result.returncode == 1
    assert "--force" in result.stderr and "force=true" not in result.stderr
    assert result.stderr.count("stop it first") == 1
    again = run_inproc("fleets", "create", fleet, env=env)
    assert again.returncode == 1
    assert again.stderr.count("already exists") == 1, again.stderr


# 6. stop and delete are idempotent, with a note
def test_stop_and_delete_twice_succeed_with_a_note(fleet_env):
    env, _, _ = fleet_env
    machine = create(env)
    ok(run_inproc("machines", "stop", machine, env=env))
    second = ok(run_inproc("machines", "stop", machine, env=env))
    assert "already stopped" in second.stderr
    ok(run_inproc("machines", "delete", machine, "--yes", env=env))
    again = ok(run_inproc("machines", "delete", machine, "--yes", env=env))
    assert "already destroyed" in again.stderr


# 8. id prefixes match live machines first; help examples are prefixes long enough to work
def test_prefix_matches_live_machines_first(fleet_env):
    env, client, fleet = fleet_env
    ids = [create(env) for _ in range(3)]
    ok(run_inproc("machines", "delete", ids[2], "--force", "--yes", env=env))
    common = ids[0]
    while not all(i.startswith(common) for i in ids):
        common = common[:-1]
    result = run_inproc("machines", "show", common, env=env)
    assert result.returncode == 2  # two live machines share it: ambiguous between them only
    assert ids[0] in result.stderr and ids[1] in result.stderr and ids[2] not in result.stderr


def test_help_examples_use_prefixes_that_would_work():
    import re

    import typer

    from valyent_cli.main import full_app

    def walk(command):
        yield command
        for sub in getattr(command, "commands", {}).values():
            yield from walk(sub)

    found = []
    for command in walk(typer.main.get_command(full_app())):
        found += re.findall(r"\b(01[0-9a-hjkmnp-tv-z]{2,})\b", command.help or "")
    assert found
    # Ids are time-ordered: machines made the same minute share ~8 leading characters.
    assert all(len(prefix) >= 12 for prefix in found), found


# 7. Ctrl-C during create says the machine may exist (and its id once the answer came)
def test_ctrl_c_while_create_is_in_flight(tmp_path, fault_server):
    from support.cli import Proc
    from support.faultserver import Hang, Reply, cli_env_for

    fault_server.handler = lambda r: Hang() if r.method == "POST" else None
    env = cli_env_for(fault_server, tmp_path / "config")
    proc = Proc(["machines", "create", "-q", "--image", "nginx"], env)
    try:
        proc.wait_for(lambda: fault_server.count("POST"), what="the create request")
        assert proc.interrupt() == 130
    finally:
        proc.kill()
    assert "may have been created" in proc.stderr and "machines list" in proc.stderr
    assert proc.out == []

    machine = {"id": "01jsweepmachine0000000000a", "fleet": "fleet_01", "state": "starting", "config": {}}

    def handler(request):
        if request.method == "POST":
            return Reply(status=201, json=machine)
        if request.path.endswith("/events"):
            return Reply(json=[])
        if request.path.endswith("/wait"):
            return Hang()
        return Reply(json=machine)

    fault_server.handler = handler
    proc = Proc(["machines", "create", "-q", "--image", "nginx"], env)
    try:
        proc.wait_for(lambda: fault_server.count("GET") >= 2, what="the watch")
        assert proc.interrupt() == 130
    finally:
        proc.kill()
    assert f"machine {machine['id']} was created" in proc.stderr


# 9. CI mode against a sandbox without VALYENT_INITD_URL: the hint names it
def test_fs_without_initd_url_names_the_variable(fleet_env):
    env, _, _ = fleet_env
    machine = create(env)
    env = {k: v for k, v in env.items() if k != "VALYENT_INITD_URL"}
    result = run_inproc("fs", "ls", machine, "/", env=env)
    # off Valyent Cloud no agent host is guessed (issue 11): refused before any connection, naming the variable
    assert result.returncode == 2
    assert "VALYENT_INITD_URL" in result.stderr and "initd.valyent.dev" not in result.stderr


# 10. exec: piped stdin refused with a clear message; --json exits with the remote code; 124 documented
def test_exec_refuses_piped_stdin_and_json_keeps_the_exit_code(fleet_env):
    env, _, _ = fleet_env
    machine = create(env)
    piped = run_cli("machines", "exec", machine, "--", "cat", env=env, input="hi\n")
    assert piped.returncode == 2
    assert "stdin" in piped.stderr and "fs put" in piped.stderr
    empty = run_cli("machines", "exec", machine, "--", "sh", "-c", "exit 4", env=env, input="")
    assert empty.returncode == 4
    result = run_cli("machines", "exec", "--json", machine, "--", "sh", "-c", "echo x; exit 4", env=env)
    assert result.returncode == 4
    assert json.loads(result.stdout)["exit_code"] == 4
    timed = run_cli("machines", "exec", "--timeout", "1s", machine, "--", "sleep", "30", env=env)
    assert timed.returncode == 124
    assert "124" in ok(run_cli("--help", env=env)).stdout


# 11. fleet-wide logs --json: each entry says its machine
def test_fleet_wide_json_logs_carry_the_machine_id(fleet_env):
    from support.cli import Proc

    env, client, fleet = fleet_env
    a = ok(run_inproc("machines", "create", "-q", "--image", "alpine", "--", "sh", "-c", "echo from-a; sleep 600",
                   env=env)).stdout.strip()
    b = ok(run_inproc("machines", "create", "-q", "--image", "alpine", "--", "sh", "-c",
                   "while true; do echo from-b; sleep 0.2; done", env=env)).stdout.strip()
    client.machines.wait(fleet, a, "running", 10)
    entries = [json.loads(line) for line in ok(run_inproc("logs", "--json", env=env)).stdout.splitlines()]
    assert {e["machine_id"] for e in entries if e["message"] == "from-a"} == {a}
    assert {e["machine_id"] for e in entries if e["message"] == "from-b"} == {b}
    one = [json.loads(line) for line in ok(run_inproc("logs", a, "--json", env=env)).stdout.splitlines()]
    assert "machine_id" not in one[0]  # one machine: exactly as the API sent it
    proc = Proc(["logs", "-f", "--json"], env)
    try:
        proc.wait_for(lambda: len(proc.out) >= len(entries) + 3, what="live lines")
    finally:
        proc.kill()
    live = [json.loads(line) for line in proc.out]
    assert all(e["machine_id"] == (a if e["message"] == "from-a" else b) for e in live)


# 12. logs -f says when the machine exits; --exit-with-machine stops with its exit code
def test_logs_follow_notes_the_exit_and_can_exit_with_the_machine(fleet_env):
    from support.cli import Proc

    env, client, fleet = fleet_env
    script = "echo one; while [ ! -e go ]; do sleep 0.05; done; echo two; exit 3"
    machine = ok(run_inproc("machines", "create", "-q", "--image", "alpine", "--restart", "never", "--",
                         "sh", "-c", script, env=env)).stdout.strip()
    follow = Proc(["logs", "-f", machine], env)
    exiting = Proc(["logs", "-f", machine, "--exit-with-machine"], env)
    try:
        follow.wait_for(lambda: any(line.endswith(" one") for line in follow.out), what="the first line")
        exiting.wait_for(lambda: any(line.endswith(" one") for line in exiting.out), what="the first line")
        client.fs(machine).write("go", b"")
        assert exiting.finish() == 3, exiting.stderr
        assert [line.split(" ", 1)[1] for line in exiting.out] == ["one", "two"]
        assert "exited (exit code 3)" in exiting.stderr
        follow.wait_for(lambda: "exited (exit code 3)" in follow.stderr, what="the note")
        assert follow.proc.poll() is None  # still following, as documented
    finally:
        follow.kill()
        exiting.kill()
    bad = run_inproc("logs", "--exit-with-machine", machine, env=env)
    assert bad.returncode == 2


# 13. narrow tables, fleet names where people read them
def test_tables_at_60_columns_and_fleet_names(fleet_env):
    from support.cli import ANSI, on_terminal

    env, client, fleet = fleet_env
    for _ in range(2):
        client.machines.create(fleet, {"region": "gra-1", "skip_start": True, "config": {
            "image": "registry.example.com/team/very-long-image-name:2024.11.29",
            "guest": {"cpu_kind": "shared", "memory_mb": 256, "cpus": 1}}})
    code, screen = on_terminal(["machines", "list"], env, columns=60)
    assert code == 0, screen
    lines = [line for line in ANSI.sub("", screen).replace("\r", "").splitlines() if line.strip()]
    assert len(lines) == 3, lines  # a header and one line per machine: nothing wraps
    assert all(len(line) <= 60 for line in lines), lines
    client.gateways.create(fleet, name="gw", target_port=8080)
    listed = ok(run_inproc("gateways", "list", env=env)).stdout
    assert fleet in listed and "fleet_" not in listed
    machine = client.machines.list(fleet)[0]["id"]
    shown = ok(run_inproc("machines", "show", machine, env=env)).stdout
    assert f"Fleet:    {fleet} (fleet_" in shown


# 14. small things a new user met
def test_completion_of_an_unknown_shell_speaks_our_words(cli_env):
    result = run_inproc("completion", "tcsh", env=cli_env)
    assert result.returncode == 2
    assert "Value error" not in result.stderr and "'tcsh' is not one of" in result.stderr


def test_help_shows_plain_placeholders(cli_env):
    text = ok(run_inproc("fs", "ls", "--help", env=cli_env)).stdout
    assert "Usage: valyent fs ls [OPTIONS] MACHINE [PATH]" in text
    run_help = ok(run_inproc("machines", "run", "--help", env=cli_env)).stdout
    assert "<list[str]>" not in run_help and "<str>" not in run_help and "{" not in run_help.split("\n")[0]


def test_dry_run_is_indented_on_a_terminal(cli_env):
    from support.cli import ANSI, on_terminal

    code, screen = on_terminal(["machines", "create", "--dry-run", "--image", "nginx", "--fleet", "x"], cli_env)
    assert code == 0, screen
    text = ANSI.sub("", screen).replace("\r", "")
    assert '\n  "config": {' in "\n" + text


def test_show_quotes_the_command(fleet_env):
    env, _, _ = fleet_env
    machine = ok(run_inproc("machines", "create", "-q", "--image", "alpine", "--", "sh", "-c", "sleep 600 # a b",
                         env=env)).stdout.strip()
    shown = ok(run_inproc("machines", "show", machine, env=env)).stdout
    assert "Command:  sh -c 'sleep 600 # a b'" in shown


def test_fs_get_refuses_to_overwrite_without_force(fleet_env, tmp_path):
    env, client, _ = fleet_env
    machine = create(env)
    client.fs(machine).write("/f.txt", b"remote\n")
    target = tmp_path / "f.txt"
    target.write_text("mine\n")
    refused = run_inproc("fs", "get", machine, "/f.txt", str(target), env=env)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert target.read_text() == "mine\n"
    ok(run_inproc("fs", "get", machine, "/f.txt", str(target), "--force", env=env))
    assert target.read_text() == "remote\n"


def test_json_with_quiet_is_bad_usage(fleet_env):
    env, _, _ = fleet_env
    for args in (["machines", "list"], ["fleets", "list"], ["machines", "create", "--image", "x"]):
        result = run_inproc(*args, "--json", "-q", env=env)
        assert result.returncode == 2, args
        assert "--json" in result.stderr


def test_start_and_stop_print_json_or_ids(fleet_env):
    env, _, _ = fleet_env
    machine = create(env)
    stopped = ok(run_inproc("machines", "stop", machine, "--json", env=env))
    assert json.loads(stopped.stdout)["state"] == "stopped"
    started = ok(run_inproc("machines", "start", machine, "-q", env=env))
    assert started.stdout == machine + "\n"


def test_fleets_and_gateways_create_print_the_object(fleet_env):
    env, client, fleet = fleet_env
    name = f"s-{secrets.token_hex(4)}"
    try:
        made = ok(run_inproc("fleets", "create", name, env=env))
        assert "Name:" in made.stdout and name in made.stdout
    finally:
        client.fleets.delete(name)
    quiet = ok(run_inproc("fleets", "create", name, "-q", env=env)).stdout.strip()
    client.fleets.delete(name)
    assert quiet.startswith("fleet_")
    gateway = ok(run_inproc("gateways", "create", "--name", "gw", "--port", "8080", env=env))
    assert "Target port:" in gateway.stdout and "8080" in gateway.stdout
    gid = ok(run_inproc("gateways", "create", "--name", "gw2", "--port", "8081", "-q", env=env)).stdout.strip()
    assert gid == client.gateways.get(fleet, gid)["id"]
    for g in client.gateways.list(fleet):
        client.gateways.delete(fleet, g["id"])


def test_fleets_create_use_says_created_first(tmp_path, sandbox):
    env = cli_environ(tmp_path / "config")
    ok(run_inproc("profiles", "create", "sb", "--endpoint", sandbox.url, "--token-stdin", "--use", env=env,
               input=sandbox.token))
    name = f"s-{secrets.token_hex(4)}"
    result = run_inproc("fleets", "create", name, "--use", env=env)
    Client(sandbox.token, endpoint=sandbox.url).fleets.delete(name)
    assert result.returncode == 0, result.stderr
    assert result.stderr.index("Created fleet") < result.stderr.index("is now the default")


def test_declining_a_delete_is_a_note_not_an_error(fleet_env):
    env, _, _ = fleet_env
    machine = create(env)
    # the terminal holds the answer until the prompt reads it
    code, screen = on_terminal(["machines", "delete", machine], env, columns=None, term="dumb", typed=b"n\n",
                               color=False)
    assert code == 1, screen
    assert "Cancelled" in screen and "Error" not in screen


# 16, 18. the README's first commands work on a fresh Debian/Ubuntu; .ci/run runs its test command; man pages
def _readme_commands() -> tuple[str, str]:
    from support.cli import REPO

    text = (REPO / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in text.split("```bash\n")[1:3]]
    return blocks[0], blocks[1]


def test_readme_first_commands_use_a_venv_and_ci_runs_the_same():
    from support.cli import REPO

    try_it, tests = _readme_commands()
    for command in (try_it, tests):
        assert "\n" not in command  # one command to paste
        assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install ")
        assert "python3 -m pip install" not in command  # the system pip: "externally-managed-environment"
    assert try_it.endswith("valyent local start && valyent machines create --image nginx")
    assert tests in (REPO / ".ci" / "run").read_text().splitlines()


def test_deleting_a_fleet_of_that_name_in_another_namespace_keeps_the_profiles_fleet(tmp_path, sandbox):
    env = cli_environ(tmp_path / "config")
    ok(run_inproc("profiles", "create", "sb", "--endpoint", sandbox.url, "--token-stdin", "--use", env=env,
                  input=sandbox.token))
    name, other = f"web-{secrets.token_hex(3)}", f"demo-{secrets.token_hex(3)}"
    ok(run_inproc("fleets", "create", name, "--use", env=env))
    ok(run_inproc("namespaces", "create", other, env=env))
    ok(run_inproc("--namespace", other, "fleets", "create", name, env=env))
    deleted = ok(run_inproc("--namespace", other, "fleets", "delete", name, "--yes", env=env))
    assert "no default fleet now" not in deleted.stderr
    assert json.loads(ok(run_inproc("profiles", "show", "sb", "--json", env=env)).stdout)["fleet"] == name
    ok(run_inproc("fleets", "show", name, env=env))  # still there, and still the profile's
    ok(run_inproc("fleets", "delete", name, "--yes", env=env))


def test_readme_says_how_to_read_the_man_pages_from_the_checkout():
    from support.cli import REPO

    text = (REPO / "README.md").read_text()
    assert "man -l man/valyent.1" in text
    assert (REPO / "man" / "valyent.1").exists()


# 17. a deleted fleet leaves the profile; a missing fleet says where its name came from
def test_deleting_the_profiles_fleet_clears_it_and_not_found_says_where_it_came_from(tmp_path, sandbox):
    env = cli_environ(tmp_path / "config")
    ok(run_inproc("profiles", "create", "sb", "--endpoint", sandbox.url, "--token-stdin", "--use", env=env,
               input=sandbox.token))
    name = f"gone-{secrets.token_hex(3)}"
    ok(run_inproc("fleets", "create", name, "--use", env=env))
    deleted = ok(run_inproc("fleets", "delete", name, "--yes", env=env))
    assert "no default fleet now" in deleted.stderr
    assert "fleet" not in json.loads(ok(run_inproc("profiles", "show", "sb", "--json", env=env)).stdout)
    ok(run_inproc("profiles", "set", "fleet", name, env=env))
    listed = run_inproc("machines", "list", env=env)
    assert listed.returncode == 4
    assert "profile sb" in listed.stderr and "fleets use" in listed.stderr
    from_env = run_inproc("machines", "list", env={**env, "VALYENT_FLEET": name})
    assert from_env.returncode == 4 and "VALYENT_FLEET" in from_env.stderr


# 19. long transfers: a progress bar on a terminal (stderr only), nothing otherwise
def _with_stderr_on_a_terminal(args: list[str], env: dict) -> tuple[int, str, bytes]:
    return on_terminal(args, env, columns=100, stdout_piped=True, color=False)


def test_fs_transfers_show_progress_on_a_terminal_only(fleet_env, tmp_path):
    env, _, _ = fleet_env
    machine = create(env)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    code, screen, stdout = _with_stderr_on_a_terminal(["fs", "put", machine, str(big), "/big.bin"], env)
    assert code == 0, screen
    assert "Uploading" in screen and "3.0 MiB" in screen and stdout == b""
    assert not re.search(r"\d [kMG]B", screen), screen  # one kind of unit in one transfer (issue 24, item 28)
    target = tmp_path / "back.bin"
    code, screen, stdout = _with_stderr_on_a_terminal(["fs", "get", machine, "/big.bin", str(target)], env)
    assert code == 0, screen
    assert "Downloading" in screen and "3.0 MiB" in screen and stdout == b""
    assert not re.search(r"\d [kMG]B", screen) and "(3.0 MiB)" in screen, screen
    assert target.read_bytes() == big.read_bytes()
    plain = ok(run_inproc("fs", "get", machine, "/big.bin", str(target), "--force", env=env))
    assert "Downloading" not in plain.stderr and "MB/s" not in plain.stderr


# 15. where a token comes from; a picker for a missing MACHINE or FLEET on a terminal, today's error without one
def _on_a_terminal_with_input(args: list[str], env: dict, typed: bytes) -> tuple[int, str]:
    code, screen = on_terminal(args, env, columns=None, term="dumb", typed=typed, color=False)
    return code, screen.replace("\r", "")


def test_missing_machine_offers_a_picker_on_a_terminal(fleet_env):
    env, _, fleet = fleet_env
    machine = create(env)
    code, screen = _on_a_terminal_with_input(["machines", "show"], env, b"1\n")
    assert code == 0, screen
    assert f"1) {machine}  running" in screen and f"ID:       {machine}" in screen
    code, screen = _on_a_terminal_with_input(["fleets", "show"], env, fleet.encode() + b"\n")
    assert code == 0, screen
    assert re.search(rf"Name:\s+{fleet}\n", screen), screen
    without = run_inproc("machines", "show", env=env)
    assert without.returncode == 2 and "Missing argument" in without.stderr


def test_auth_login_says_where_tokens_come_from(cli_env):
    result = run_inproc("auth", "login", env=cli_env, input="")
    assert result.returncode == 2
    assert "console.valyent.cloud" in result.stderr and "local start" in result.stderr
