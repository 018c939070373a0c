"""The import structure that keeps start-up fast: what `valyent --help` and `valyent --version` must not load.

Each case runs the CLI's own `main()` in a fresh interpreter, then lists the forbidden modules found in
`sys.modules`. No timings here: speed is measured by benchmarks/run.py, as ratios against baselines.
"""

from __future__ import annotations

import json

import pytest

from support.cli import REPO, probe_main, run_cli, run_python
from support.env import cli_environ

# The HTTP stack: only a command that sends a request needs it.
HTTP = ["httpx", "httpcore", "h11", "valyent_cli.api.client", "valyent_cli.api.machines"]
# The sandbox server and its stack: only `valyent local serve|start` needs it.
SANDBOX = ["valyent_cli.local.server", "valyent_cli.local.supervisor", "valyent_cli.local.store", "uvicorn",
           "starlette", "anyio"]
RICH = ["rich", "rich.console", "pygments"]


def probe(args: list[str], forbidden: list[str], tmp_path) -> dict:
    env = cli_environ(tmp_path / "config", color=True)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return probe_main(args, forbidden, env, cwd=tmp_path)


@pytest.mark.parametrize("args", [["--version"], ["-V"]], ids=["--version", "-V"])
def test_version_loads_no_http_no_rich_no_sandbox(args, tmp_path):
    result = probe(args, HTTP + SANDBOX + RICH, tmp_path)
    assert result["code"] in (0, None)
    assert result["stdout"].startswith("valyent ")
    assert result["loaded"] == []


@pytest.mark.parametrize("args", [["--help"], ["-h"], []], ids=["--help", "-h", "no-args"])
def test_root_help_loads_no_http_no_sandbox(args, tmp_path):
    result = probe(args, HTTP + SANDBOX, tmp_path)
    assert result["loaded"] == []


from valyent_cli.groups import GROUPS  # noqa: E402 - the one list of groups


@pytest.mark.parametrize("group", GROUPS)
def test_group_help_loads_no_http_no_sandbox(group, tmp_path):
    result = probe([group, "--help"], HTTP + SANDBOX, tmp_path)
    assert result["code"] in (0, None)
    assert result["loaded"] == []


def test_version_entry_point_does_not_load_typer(tmp_path):
    """`valyent --version` is answered by the entry point before the command tree (and typer) is loaded."""
    env = cli_environ(color=True)
    code = (
        "import sys\n"
        "from valyent_cli.entry import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('typer', 'httpx', 'rich') if m in sys.modules), file=sys.stderr)\n"
    )
    proc = run_python(code, env=env)
    assert proc.stdout.startswith("valyent ")
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def test_plain_options_are_coerced_without_pydantic(tmp_path):
    """Typer coerces through pydantic (60 ms of imports); our str/int/bool/list options skip it (fastparams)."""
    result = probe(["machines", "create", "--image", "nginx", "--cpus", "2", "-e", "A=1", "--auto-destroy",
                    "--dry-run"], ["pydantic", *HTTP], tmp_path)
    assert result["code"] in (0, None)
    assert json.loads(result["stdout"])["config"]["guest"]["cpus"] == 2
    assert result["loaded"] == []


def test_a_bad_integer_still_gets_typers_message(tmp_path):
    proc = run_cli("machines", "create", "--image", "x", "--cpus", "two",
                   env=cli_environ(tmp_path / "config", color=True))
    assert proc.returncode == 2
    assert "--cpus" in proc.stderr and "integer" in proc.stderr


def test_an_api_command_does_not_load_trio_or_pydantic(tmp_path):
    """httpcore would import trio (when installed) for an async backend a synchronous client never uses."""
    env = cli_environ(tmp_path / "config", token="t" * 20, url="http://127.0.0.1:9/v1", color=True)
    forbidden = ["trio", "pydantic", "rich"]
    result = probe_main(["fleets", "list"], forbidden + ["httpx"], env, cwd=tmp_path)
    assert result["code"] == 1 and "connection refused" in result["stderr"]  # the client was built and tried
    assert result["loaded"] == ["httpx"]


def test_the_api_types_load_no_http_library():
    """`valyent_cli.api` imports its heavy parts lazily (PEP 562): the types and lists cost no httpx."""
    code = ("import sys, valyent_cli.api.types, valyent_cli.api as api\n"
            "print(sorted(m for m in ('httpx', 'httpcore', 'h11') if m in sys.modules))\n"
            "api.Client; print('httpx' in sys.modules, api.FetchErrorWithPayload is api.ApiError)")
    proc = run_python(code, env=cli_environ(color=True))
    assert proc.stdout.split("\n")[:2] == ["[]", "True True"], proc.stderr


def test_states_signals_and_policies_have_one_source():
    from valyent_cli.api import types
    from valyent_cli.cli import complete, validate
    from valyent_cli.local import problems

    assert validate.SIGNALS is types.SIGNALS and complete.SIGNALS is types.SIGNALS
    assert validate.RESTART_POLICIES is types.RESTART_POLICIES is problems.RESTART_POLICIES
    assert complete.STATES is types.STATES is validate.STATES
    assert [v for v, _ in complete.signals("")] == list(types.SIGNALS)


# -- the import graph -------------------------------------------------------------------------------------------
# Built from the source (the AST of every module), not from what one run happens to load. The rule: every `import`
# and `from ... import` statement naming a valyent_cli module is an edge, at the top of a module, inside a function
# or under `if TYPE_CHECKING:` alike, so a circle held apart by an import inside a function is still a circle.
# `from pkg import name` is an edge to pkg.name when that is a module, else to pkg. The implicit import of a
# module's parent packages is not an edge (every package's `__init__` would otherwise close a circle with the
# modules it re-exports).

PACKAGE = REPO / "valyent_cli"


def _module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """valyent_cli's modules -> the valyent_cli modules each one imports."""
    import ast

    files = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # a relative import
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "valyent_cli.api._transport" in graph["valyent_cli.api.client"]  # a top-level `from x import y`
    assert "valyent_cli.api.errors" in graph["valyent_cli.api._transport"]  # `from pkg import module`
    assert "valyent_cli.api.client" in graph["valyent_cli.api"]  # under `if TYPE_CHECKING:`


def test_no_import_circle_in_the_api():
    """The transport imports no resource, no resource imports the client; `Client` imports them all."""
    graph = import_graph()
    api = {name: {t for t in targets if t.startswith("valyent_cli.api")}
           for name, targets in graph.items() if name.startswith("valyent_cli.api")}
    assert find_cycle(api) is None
    # the resource modules: every public module of api/ but the client, the errors, the types and the lists
    resources = {name.rpartition(".")[2] for name in api if name.count(".") == 2 and "._" not in name} - {
        "client", "errors", "types", "constants"}
    assert {"fleets", "machines", "initd", "logs"} <= resources
    for resource in resources:
        assert "valyent_cli.api.client" not in graph[f"valyent_cli.api.{resource}"], resource
    assert not {f"valyent_cli.api.{r}" for r in resources} & graph["valyent_cli.api._transport"]


def test_no_import_circle_in_the_package():
    """No circle anywhere in valyent_cli/ (the rule is above `import_graph`): a module that needs another's helper
    and is needed by it means the helper belongs in a third module both import (as cli/exitstatus.py for
    `machines run` and `logs --exit-with-machine`, local/errors.py for the sandbox's start-up)."""
    assert find_cycle(import_graph()) is None


def test_the_layers_import_downwards_only():
    """api/ and config/ import nothing from the command line (cli/, commands/, main); cli/ imports no command."""
    graph = import_graph()
    upper = ("valyent_cli.cli", "valyent_cli.commands", "valyent_cli.main", "valyent_cli.entry")
    for name, targets in graph.items():
        if name.startswith(("valyent_cli.api", "valyent_cli.config")):
            assert not {t for t in targets if t.startswith(upper)}, name
        if name.startswith("valyent_cli.cli"):
            assert not {t for t in targets if t.startswith("valyent_cli.commands")}, name
        if name.startswith("valyent_cli.apps"):  # deploy's plan and engine: below the commands, above the API
            assert not {t for t in targets if t.startswith(("valyent_cli.commands", "valyent_cli.main"))}, name


def test_apps_print_nothing_and_import_no_typer_nor_rich():
    """apps/ (plan, engine, releases) reports through a callback: the commands show it."""
    import re

    from pathlib import Path

    root = Path(REPO) / "valyent_cli" / "apps"
    for path in root.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import) (typer|rich)\b", text, re.M), path
        assert "print(" not in text and "sys.stdout" not in text and "sys.stderr" not in text, path
