"""The shape of the configuration layer (issue 15 item 2): `valyent_cli/config/` is a package with one module per
responsibility, each small; every default value lives in `valyent_cli/defaults.py` and the API client, the create
payload and the settings take theirs from there."""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

from valyent_cli import api, config, defaults
from valyent_cli.cli import payload

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "valyent_cli"


def test_each_config_module_is_under_600_lines():
    modules = sorted((PACKAGE / "config").glob("*.py"))
    assert len(modules) >= 8, [m.name for m in modules]  # a package by responsibility, not one file moved
    sizes = {m.name: len(m.read_text().splitlines()) for m in modules}
    assert all(n < 600 for n in sizes.values()), sizes
    assert not (PACKAGE / "config.py").exists()


def test_defaults_imports_only_the_standard_library():
    tree = ast.parse((PACKAGE / "defaults.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_importing_config_loads_nothing_heavy():
    code = ("import sys, valyent_cli.config\n"
            "heavy = ('httpx', 'typer', 'rich', 'tomllib', 'tomli_w', 'platformdirs', 'valyent_cli.api')\n"
            "print(__import__('json').dumps(sorted(m for m in heavy if m in sys.modules)))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(proc.stdout) == [], proc.stderr


def test_the_client_the_payload_and_the_settings_use_the_one_set_of_defaults():
    params = inspect.signature(api.Client.__init__).parameters
    assert params["timeout"].default is defaults.DEFAULT_TIMEOUT
    assert params["max_retries"].default is defaults.DEFAULT_MAX_RETRIES
    assert params["auth_scheme"].default is defaults.DEFAULT_AUTH_SCHEME
    assert api.DEFAULT_ENDPOINT is defaults.DEFAULT_ENDPOINT
    assert api.DEFAULT_INITD_ENDPOINT is defaults.DEFAULT_INITD_ENDPOINT
    for name in ("DEFAULT_REGION", "DEFAULT_CPU_KIND", "DEFAULT_CPUS", "DEFAULT_MEMORY_MB"):
        assert getattr(payload, name) is getattr(defaults, name), name
    for name in ("DEFAULT_ENDPOINT", "DEFAULT_INITD_ENDPOINT", "DEFAULT_TIMEOUT", "DEFAULT_REGION", "LOCAL_PROFILE"):
        assert getattr(config, name) is getattr(defaults, name), name


def test_no_default_value_is_written_out_again():
    """The endpoint, the agent template and the region appear as literals only in defaults.py."""
    values = {defaults.DEFAULT_ENDPOINT, defaults.DEFAULT_INITD_ENDPOINT, defaults.DEFAULT_REGION}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "defaults.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in values:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert found == []


def test_every_name_of_the_package_is_the_defining_modules_object():
    """`from valyent_cli.config import X` and the module defining X give the same object (a re-export, no copy)."""
    for name in config.__all__:
        value = getattr(config, name)
        home = getattr(value, "__module__", None)
        if home and home.startswith("valyent_cli.config."):
            assert getattr(sys.modules[home], name) is value, name
