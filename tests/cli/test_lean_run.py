"""A run builds and imports what its command uses (issue 16): one command of its group, one resource of the API.

The command tree: `valyent GROUP COMMAND ...` gives typer a copy of the group holding only COMMAND
(`main._one_command`), since typer builds every command of a group before it parses the line; the group's help, a
typo and an option before the command still get the whole group, with typer's messages. The API client: each
resource module is imported by its property on first use, and the payload TypedDicts of `api/types.py` are loaded
by none of them. No timings here (benchmarks/run.py measures); these tests check what is built and loaded, and
that the answers did not change.
"""

from __future__ import annotations

import json
import os

import pytest

from support.cli import probe_main as probe, run_cli, run_python


def test_a_command_builds_only_itself_of_its_group(cli_env):
    result = probe(["machines", "list", "--json", "--fleet", "default"], [], cli_env)
    assert result["code"] in (0, None), result["stderr"]
    assert result["built"] == [["machines", ["list"]]]
    assert isinstance(json.loads(result["stdout"]), list)


@pytest.mark.parametrize("args", [["machines", "--help"], ["machines", "lst"], ["machines"]],
                         ids=["group-help", "typo", "group-alone"])
def test_group_help_and_typos_get_the_whole_group(args, cli_env):
    result = probe(args, [], cli_env)
    (name, commands), = result["built"]
    assert name == "machines" and {"list", "create", "show", "exec"} <= set(commands)


def test_a_typo_still_gets_typers_suggestion(cli_env):
    result = run_cli("fleets", "lst", env=cli_env)
    assert result.returncode == 2
    assert "No such command 'lst'" in result.stderr and "Did you mean 'list'?" in result.stderr


def test_global_options_before_the_group_are_not_taken_for_it(cli_env):
    # `--profile fleets`: "fleets" is the profile's name, and the group is the next word
    from valyent_cli.main import _one_command

    one = _one_command(["--profile", "fleets", "machines", "list"])
    assert [(g.typer_instance.info.name, [c.name for c in g.typer_instance.registered_commands])
            for g in one.registered_groups] == [("machines", ["list"])]
    assert _one_command(["--endpoint", "http://x", "fleets", "--help"]) is None


def test_the_groups_own_apps_keep_every_command():
    """The copy given to typer leaves the group's app whole: the docs, completion and a later full_app see it all."""
    from valyent_cli.commands import fleets
    from valyent_cli.main import _one_command, full_app

    before = [c.name for c in fleets.app.registered_commands]
    _one_command(["fleets", "list"])
    assert [c.name for c in fleets.app.registered_commands] == before and len(before) > 1
    tree = typer_tree(full_app())
    assert set(before) <= set(tree["fleets"])


def typer_tree(app) -> dict[str, list[str]]:
    import typer.main

    root = typer.main.get_command(app)
    return {name: sorted(getattr(group, "commands", {})) for name, group in root.commands.items()}


def test_a_command_with_its_options_after_it_parses_as_before(cli_env):
    result = run_cli("fleets", "list", "--label", "team=nobody", "--json", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    result = run_cli("fleets", "list", "--label", "no-equals-sign", env=cli_env)
    assert result.returncode == 2 and "--label" in result.stderr


def test_listing_fleets_loads_no_other_resource_and_no_payload_types(cli_env):
    watched = ["valyent_cli.api.types", "valyent_cli.api.machines", "valyent_cli.api.builds",
               "valyent_cli.api.initd", "valyent_cli.api.gateways", "valyent_cli.api.fleets",
               "valyent_cli.cli.metadata"]
    result = probe(["fleets", "list", "--json"], watched, cli_env)
    assert result["code"] in (0, None), result["stderr"]
    assert any(f["name"] == "default" for f in json.loads(result["stdout"]))
    # metadata (the --label checks) only when a --label is given
    assert result["loaded"] == ["valyent_cli.api.fleets"]


def test_the_sdk_names_are_where_they_were():
    code = ("import valyent_cli.api as api, valyent_cli.api.types as t, valyent_cli.api._object as o\n"
            "from valyent_cli.api.client import Client\n"
            "c = Client('tok', endpoint='http://127.0.0.1:9/v1')\n"
            "print(t.ApiObject is o.ApiObject, type(c.fleets).__name__, type(c.machines).__name__,"
            " type(c.fs('m')).__name__, api.Machine.__mro__[1] is o.ApiObject, t.CreateMachinePayload.__name__,"
            " [str(s) for s in t.WAITABLE_STATES] == list(t.STATES))")
    proc = run_python(code, env=dict(os.environ))
    assert proc.stdout.split() == ["True", "Fleets", "Machines", "FileSystem", "True", "CreateMachinePayload",
                                   "True"], proc.stderr


@pytest.mark.parametrize("module, function", [("valyent_cli.main", "root"), ("valyent_cli.commands.fleets", "list_"),
                                              ("valyent_cli.commands.logs", "logs")])
def test_the_commands_built_on_every_run_have_no_string_annotations(module, function):
    """typer evaluates a command's annotations each time it builds it: a string (`from __future__ import
    annotations`) costs a compile() per parameter, on every run of the root, `fleets` and `logs` commands."""
    import importlib
    import inspect

    signature = inspect.signature(getattr(importlib.import_module(module), function))
    assert [name for name, p in signature.parameters.items() if isinstance(p.annotation, str)] == []
