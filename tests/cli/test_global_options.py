"""The root's options (`--debug`, `--no-color`, `--profile/-p`, `--endpoint`, `--namespace`) anywhere on the line,
as gh takes its persistent flags (issue 24, item 18), against the real sandbox through the real CLI."""

from __future__ import annotations

from support.cli import ok, run_cli, run_inproc

from valyent_cli.cli import complete


def test_no_color_and_debug_after_the_command(fleet_env):
    env, _, name = fleet_env
    ok(run_inproc("fleets", "show", name, "--no-color", env=env))
    result = ok(run_inproc("fleets", "list", "--debug", env=env))
    assert "[debug] GET " in result.stderr
    assert name in result.stdout
    # between the group and the command too
    result = ok(run_inproc("fleets", "--debug", "list", "--json", env=env))
    assert "[debug] GET " in result.stderr


def test_profile_after_the_command_chooses_the_account(fleet_env):
    env, _, name = fleet_env
    result = run_inproc("fleets", "list", "-p", "nosuchprofile", env=env)
    assert result.returncode == 2, result.stderr
    assert "nosuchprofile" in result.stderr
    result = run_inproc("fleets", "show", name, "--profile=nosuchprofile", env=env)
    assert result.returncode == 2, result.stderr
    assert "nosuchprofile" in result.stderr


def test_a_machines_own_words_and_a_commands_own_options_are_left_alone(one_machine, cli_env, tmp_path):
    env, machine, _ = one_machine
    # after `--`, `--debug` is the remote command's
    result = ok(run_cli("machines", "exec", machine, "--", "echo", "--debug", "-p", "x", env=env))
    assert result.stdout == "--debug -p x\n"
    assert "[debug]" not in result.stderr
    # ... and before it, the root's
    result = run_cli("machines", "exec", machine, "-p", "nosuchprofile", "--", "echo", "hi", env=env)
    assert result.returncode != 0 and "no profile named 'nosuchprofile'" in result.stderr, result.stderr
    # `profiles create --endpoint` is that command's own option
    ok(run_inproc("profiles", "create", "elsewhere", "--endpoint", "http://127.0.0.1:9/v1", "--debug", env=env))
    shown = ok(run_inproc("profiles", "show", "elsewhere", "--json", env=env))
    assert "127.0.0.1:9" in shown.stdout


def test_completion_reads_the_global_flags_anywhere_before_the_double_dash():
    assert complete.parse_line("valyent machines show -p work 01") == ("01", {"profile": "work"})
    assert complete.parse_line("valyent machines exec 01 -- ls -p work ") == ("", {})
    assert complete.parse_line("valyent profiles set --profile ") == ("", {})  # not the global flag


def test_a_commands_flags_before_it(fleet_env):
    """`valyent --json fleets list`, `valyent -q fleets list`: the command's flags, written first, are its own."""
    import json

    env, client, name = fleet_env
    listed = ok(run_inproc("--json", "fleets", "list", env=env))
    assert name in [f["name"] for f in json.loads(listed.stdout)]
    assert client.fleets.get(name)["id"] in ok(run_inproc("-q", "--no-color", "fleets", "list", env=env)).stdout.split()
    bogus = run_inproc("--bogus", "fleets", "list", env=env)
    assert bogus.returncode == 2 and "--bogus" in bogus.stderr
