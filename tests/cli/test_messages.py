"""What the CLI says, word for word where a newcomer met a wrong or vague message (issue 24, item 20), against the
real sandbox through the real CLI."""

from __future__ import annotations

from support.cli import ok, run_inproc


def test_an_empty_label_filter_names_the_filter(one_machine):
    env, _, _ = one_machine
    result = ok(run_inproc("machines", "list", "--label", "app=nothing-here", env=env))
    assert "app=nothing-here" in result.stderr
    assert "Create one" not in result.stderr


def test_a_wait_that_times_out_says_how_long_with_its_unit(one_machine):
    env, machine, _ = one_machine
    result = run_inproc("machines", "wait", machine, "--state", "stopped", "--timeout", "1", env=env)
    assert result.returncode == 5, result.stderr
    assert "after 1s" in result.stderr


def test_span():
    from valyent_cli.cli.humanize import span

    assert [span(s) for s in (2, 0.5, 59, 60, 90, 600, 3600, 5400)] == [
        "2s", "0.5s", "59s", "1m", "1m30s", "10m", "1h", "1h30m"]


def test_run_quiet_help_says_what_it_prints(cli_env):
    text = " ".join(ok(run_inproc("machines", "run", "--help", env=cli_env)).stdout.split())
    assert "Print only ids" not in text
    assert "Print only the machine's output" in text
