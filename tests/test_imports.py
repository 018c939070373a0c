"""The import structure that keeps start-up fast: what `valyent --help` and `valyent --version` must not load.

Each case runs the CLI's own `main()` in a fresh interpreter, then lists the forbidden modules found in
`sys.modules`. No timings here: speed is measured by benchmarks/run.py, as ratios against baselines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO

PROBE = """
import json, sys
forbidden = json.loads(sys.argv[1])
sys.argv = ["valyent", *json.loads(sys.argv[2])]
from valyent_cli.main import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "loaded": sorted(m for m in forbidden if m in sys.modules)}), file=sys.stderr)
"""

# The HTTP stack: only a command that sends a request needs it.
HTTP = ["httpx", "httpcore", "h11", "valyent_cli.api", "valyent_cli.api.client"]
# The sandbox server and its stack: only `valyent local serve|start` needs it.
SANDBOX = ["valyent_cli.local.server", "valyent_cli.local.supervisor", "valyent_cli.local.store", "uvicorn",
           "starlette", "anyio"]
RICH = ["rich", "rich.console", "pygments"]


def probe(args: list[str], forbidden: list[str], tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALYENT_")}
    env["VALYENT_CONFIG_DIR"] = str(tmp_path / "config")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(forbidden), json.dumps(args)],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    try:
        result = json.loads(last)
    except ValueError:
        pytest.fail(f"the probe failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {**result, "stdout": proc.stdout}


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


@pytest.mark.parametrize("group", ["fleets", "machines", "gateways", "fs", "logs", "namespaces", "secrets", "nodes",
                                   "auth", "profiles", "local"])
def test_group_help_loads_no_http_no_sandbox(group, tmp_path):
    result = probe([group, "--help"], HTTP + SANDBOX, tmp_path)
    assert result["code"] in (0, None)
    assert result["loaded"] == []


def test_version_entry_point_does_not_load_typer(tmp_path):
    """`valyent --version` is answered by the entry point before the command tree (and typer) is loaded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALYENT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    code = (
        "import sys; sys.argv = ['valyent', '--version']\n"
        "from valyent_cli.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('typer', 'httpx', 'rich') if m in sys.modules), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALYENT_")}
    env["VALYENT_CONFIG_DIR"] = str(tmp_path / "config")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "valyent_cli", "machines", "create", "--image", "x", "--cpus", "two"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--cpus" in proc.stderr and "integer" in proc.stderr


def test_an_api_command_does_not_load_trio_or_pydantic(tmp_path):
    """httpcore would import trio (when installed) for an async backend a synchronous client never uses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALYENT_")}
    env.update(VALYENT_CONFIG_DIR=str(tmp_path / "config"), VALYENT_API_TOKEN="t" * 20,
               VALYENT_API_URL="http://127.0.0.1:9/v1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    forbidden = ["trio", "pydantic", "rich"]
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(forbidden + ["httpx"]), json.dumps(["fleets", "list"])],
                          env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    result = json.loads(proc.stderr.strip().splitlines()[-1])
    assert result["code"] == 1 and "connection refused" in proc.stderr  # the client was built and tried
    assert result["loaded"] == ["httpx"]
