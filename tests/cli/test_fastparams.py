"""cli/fastparams.py hooks typer's private coercion: it must honour `parser=` and, when typer lacks what it expects,
leave typer's own path in place (slower start-up, never a broken command)."""

from __future__ import annotations

import json
import subprocess
from typing import Annotated

import typer
from typer.testing import CliRunner

from support.cli import run_python
from support.env import cli_environ

from valyent_cli.cli import fastparams


def test_parser_on_a_str_option_is_honoured():
    assert fastparams.install()
    app = typer.Typer()

    @app.command()
    def cmd(name: Annotated[str, typer.Option(parser=lambda v: v.upper())] = "x",
            count: Annotated[int, typer.Option()] = 1) -> None:
        print(json.dumps([name, count]))

    result = CliRunner().invoke(app, ["--name", "abc", "--count", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == ["ABC", 3]


# Run the real CLI with typer's private names removed or changed before valyent_cli loads.
SIMULATE = r"""
import sys, typer._coercion as c, typer.core as core
mode = sys.argv[1]
if mode == "no-factory":  # renamed in typer's coercion module (typer.core keeps its own reference)
    c.build_runtime_param_v2 = c.build_runtime_param
    del c.build_runtime_param
elif mode == "no-base":
    del c.RuntimeParam
sys.argv = ["valyent", *sys.argv[2:]]
from valyent_cli.cli import fastparams
from valyent_cli import main
try:
    main.main()
finally:
    sys.stderr.write("\nINSTALLED=%s\n" % fastparams.installed)
"""


def _simulate(mode: str, *args: str, tmp_path) -> subprocess.CompletedProcess:
    return run_python(SIMULATE, mode, *args, env=cli_environ(tmp_path / "config"), cwd=tmp_path)


def test_typer_without_the_private_factory_still_runs_every_command(tmp_path):
    for mode in ("no-factory", "no-base"):
        proc = _simulate(mode, "machines", "create", "--image", "nginx", "--cpus", "2", "--dry-run", tmp_path=tmp_path)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["config"]["guest"]["cpus"] == 2
        assert "INSTALLED=False" in proc.stderr
        bad = _simulate(mode, "machines", "create", "--image", "x", "--cpus", "two", tmp_path=tmp_path)
        assert bad.returncode == 2 and "--cpus" in bad.stderr and "Traceback" not in bad.stderr
        helped = _simulate(mode, "--help", tmp_path=tmp_path)
        assert helped.returncode == 0 and "machines" in helped.stdout


def test_the_hook_is_installed_with_the_pinned_typer(tmp_path):
    proc = _simulate("none", "machines", "create", "--image", "nginx", "--dry-run", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "INSTALLED=True" in proc.stderr
