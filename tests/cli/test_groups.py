"""The one list of command groups and API resources (valyent_cli/groups.py), and what is derived from it: the
groups the root command loads, the not-found hints, the completion fetchers (the test group lists of
test_imports.py, test_docs.py and test_no_traceback.py read it too)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from valyent_cli import groups

from support.cli import run_cli


def test_every_group_is_a_command_module_with_its_app():
    for name in groups.GROUPS:
        module = importlib.import_module(f"valyent_cli.commands.{name}")
        assert module.app.info.name == name
    modules = {p.stem for p in (Path(groups.__file__).parent / "commands").glob("*.py")} - {"__init__"}
    helpers = {"machine_views", "run", "app_views", "app_build", "app_detach", "fs_tree"}  # modules of groups (machines, deploy, fs), not groups
    assert modules - helpers == set(groups.GROUPS)


def test_the_root_command_loads_the_groups_of_the_list():
    from valyent_cli import main

    assert main.GROUPS is groups.GROUPS
    names = [info.typer_instance.info.name for info in main.full_app().registered_groups]
    assert names == list(groups.GROUPS)


def test_every_resource_has_its_group_and_each_that_completes_its_fetcher():
    from valyent_cli.cli import complete

    for kind, resource in groups.RESOURCES.items():
        assert resource["group"] in groups.GROUPS, kind
        assert resource["list"].split()[:2] == [resource["group"], "list"], kind
        assert resource["within"] in (None, "fleet", "namespace"), kind
    completing = {kind for kind, resource in groups.RESOURCES.items() if resource["complete"]}
    assert set(complete._FETCH) == completing
    assert complete._FLEETLESS == {k for k in completing if groups.RESOURCES[k]["within"] != "fleet"}


@pytest.mark.parametrize("args, hint", [
    (["fleets", "show", "no-such-fleet"], "list them: valyent fleets list"),
    (["gateways", "show", "no-such-gateway"], "list them: valyent gateways list"),
    (["--namespace", "default", "secrets", "delete", "no-such-secret", "--yes"], "list them: valyent secrets list"),
    (["machines", "show", "01jzzzzzzzzzzzzzzzzzzzzzzz"], "list them with `valyent machines list --all`"),
], ids=["fleet", "gateway", "secret", "machine"])
def test_a_resource_not_found_names_the_command_that_lists_them(fleet_env, args, hint):
    """The hint for a 404 (the API's, cli/errors.py; or the name resolver's, cli/resolve.py) comes from the one
    list: the resource's own `list` command."""
    env, _, _ = fleet_env
    result = run_cli(*args, env=env)
    assert result.returncode == 4, result.stderr
    assert hint in result.stderr
