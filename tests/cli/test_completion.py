"""Shell completion: `valyent completion SHELL`, the scripts' syntax, and the real scripts driven as bash and
fish drive them, answering with machine ids and fleet names from a running sandbox."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from support.host import skip_or_fail
from support.cli import REPO, run_cli, run_python
from support.env import cli_environ

from valyent_cli.cli import complete
from valyent_cli.devtools import gendocs

BASH = REPO / "completions" / "valyent.bash"
ZSH = REPO / "completions" / "_valyent"
FISH = REPO / "completions" / "valyent.fish"


# -- `valyent completion` -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shell,path", [("bash", BASH), ("zsh", ZSH), ("fish", FISH)])
def test_completion_command_prints_the_committed_script(shell, path, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALYENT_")}
    env["VALYENT_CONFIG_DIR"] = str(tmp_path)
    result = run_cli("completion", shell, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == path.read_text(encoding="utf-8"), "run python -m valyent_cli.devtools.gendocs"


def test_completion_rejects_an_unknown_shell(tmp_path):
    result = run_cli("completion", "tcsh", env={**os.environ, "VALYENT_CONFIG_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert result.stdout == ""
    assert "tcsh" in result.stderr


def need_shell(shell: str) -> None:
    """Skip, saying so in the run's summary (`-ra`), where ``shell`` is missing; fail in CI, which installs zsh and
    fish (.ci/run): there the scripts for them must be checked."""
    if not shutil.which(shell):
        skip_or_fail(f"{shell} is not installed, so its completion script is not checked (apt-get install {shell})")


# -- syntax ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shell,path", [("bash", BASH), ("zsh", ZSH), ("fish", FISH)])
def test_script_syntax(shell, path):
    need_shell(shell)
    result = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


# -- the request for values, as the scripts send it ------------------------------------------------------------------
def test_parse_line():
    assert complete.parse_line("valyent -p work --endpoint=http://x machines show --fleet web 01") == (
        "01", {"profile": "work", "endpoint": "http://x", "fleet": "web"})
    assert complete.parse_line("valyent machines list --fleet=we") == ("we", {})
    assert complete.parse_line("valyent profiles set --profile ") == ("", {})  # not the global flag
    assert complete.parse_line("valyent machines show 'unclosed") == ("'unclosed", {})


def _values(kind: str, line: str, env: dict) -> subprocess.CompletedProcess:
    env = {**env, complete.ENV_KIND: kind, complete.ENV_LINE: line}
    return run_cli(env=env)


@pytest.fixture()
def env(cli_env, tmp_path) -> dict:
    """The sandbox's environment, a private cache, and `valyent` on PATH running this checkout."""
    shim = tmp_path / "bin"
    shim.mkdir()
    program = shim / "valyent"
    program.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m valyent_cli "$@"\n')
    program.chmod(0o755)
    return {
        **cli_env,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}",
    }


@pytest.fixture()
def machine(sandbox) -> tuple[str, str]:
    """A fleet of its own with one machine: (fleet name, machine id)."""
    from valyent_cli.api import Client

    fleet = f"comp-{uuid.uuid4().hex[:8]}"
    with Client(sandbox.token, endpoint=sandbox.url, initd_endpoint=sandbox.initd) as client:
        client.fleets.create(fleet)
        m = client.machines.create(fleet, {"region": "gra-1", "config": {
            "image": "nginx", "guest": {"cpu_kind": "shared", "memory_mb": 256, "cpus": 1}}})
    return fleet, str(m["id"])


def test_program_answers_machine_ids_with_state_and_image(env, machine, tmp_path):
    fleet, machine_id = machine
    result = _values("machine", f"valyent machines show --fleet {fleet} ", env)
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert any(line.startswith(machine_id + "\t") and "nginx" in line for line in lines), lines

    cache = tmp_path / "cache" / "valyent" / "completion.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert env["VALYENT_API_TOKEN"] not in cache.read_text()


def test_program_offers_nothing_and_says_nothing_on_failure(env, tmp_path):
    down = {**env, "VALYENT_API_URL": "http://127.0.0.1:9/v1"}
    for kind, line in [("machine", "valyent machines show --fleet x "), ("fleet", "valyent fleets use "),
                       ("fleet", "valyent --profile nope fleets use "), ("nonsense", "valyent ")]:
        started = time.monotonic()
        result = _values(kind, line, down)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), (kind, line)
        assert time.monotonic() - started < 10


# -- bash, as bash drives it ----------------------------------------------------------------------------------------
BASH_DRIVER = r"""
source "$1"
COMP_LINE=$2
COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
complete -p valyent >/dev/null || exit 3
$(complete -p valyent | sed -E 's/.*-F ([^ ]+).*/\1/') valyent "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def bash_complete(line: str, env: dict) -> list[str]:
    result = subprocess.run(["bash", "--norc", "-c", BASH_DRIVER, "bash", str(BASH), line], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [w for w in result.stdout.splitlines() if w]


def test_bash_completes_commands_options_and_choices(env):
    assert "machines" in bash_complete("valyent ", env)
    assert bash_complete("valyent mach", env) == ["machines"]
    assert "exec" in bash_complete("valyent machines ", env)
    assert set(bash_complete("valyent machines wait abc --state ", env)) == {"running", "stopped", "destroyed"}
    assert bash_complete("valyent machines stop x --signal SIGK", env) == ["SIGKILL"]
    assert "--wait-timeout" in bash_complete("valyent machines create --wa", env)
    assert bash_complete("valyent completion f", env) == ["fish"]


def test_bash_completes_a_real_machine_id_and_fleet_name(env, machine):
    fleet, machine_id = machine
    assert fleet in bash_complete("valyent machines list --fleet ", env)
    assert bash_complete(f"valyent machines list --fleet={fleet[:-1]}", env) == [fleet]  # bash replaces after the =
    assert fleet in bash_complete("valyent fleets use ", env)
    assert machine_id in bash_complete(f"valyent machines show --fleet {fleet} ", env)
    assert machine_id in bash_complete(f"valyent machines stop --fleet {fleet} {machine_id[:4]}", env)
    # the fleet from the environment, as a user with VALYENT_FLEET set
    assert machine_id in bash_complete("valyent machines show ", {**env, "VALYENT_FLEET": fleet})


def test_bash_completes_profile_names(env):
    created = run_cli("profiles", "create", "work-one", "--endpoint", "http://127.0.0.1:1/v1", env=env)
    assert created.returncode == 0, created.stderr
    assert "work-one" in bash_complete("valyent --profile ", env)
    assert "work-one" in bash_complete("valyent profiles use w", env)


# -- fish, as fish drives it ----------------------------------------------------------------------------------------
def fish_complete(line: str, env: dict) -> list[tuple[str, str]]:
    need_shell("fish")
    script = f"source {_fish_quote(str(FISH))}; complete -C {_fish_quote(line)}"
    result = subprocess.run(["fish", "--no-config", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [tuple((line.split("\t", 1) + [""])[:2]) for line in result.stdout.splitlines() if line]


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def test_fish_completes_commands_and_choices(env):
    need_shell("fish")
    assert ("machines", "Manage machines: create, list, start, stop, wait, exec and more.") in fish_complete("valyent ", env)
    assert {v for v, _ in fish_complete("valyent machines wait x --state ", env)} == {"running", "stopped", "destroyed"}


def test_fish_completes_a_real_machine_id_and_fleet_name(env, machine):
    fleet, machine_id = machine
    machines = dict(fish_complete(f"valyent machines show --fleet {fleet} ", env))
    assert machine_id in machines and "nginx" in machines[machine_id]
    assert fleet in dict(fish_complete("valyent machines list --fleet ", env))
    assert fleet in dict(fish_complete("valyent fleets show ", env))


def test_completion_answers_fast_from_the_cache(env, machine):
    """The target is under 300 ms a Tab press; this only guards against a gross regression on a loaded CI box."""
    fleet, machine_id = machine
    line = f"valyent machines show --fleet {fleet} "
    assert machine_id in _values("machine", line, env).stdout  # fills the cache
    started = time.monotonic()
    result = _values("machine", line, env)
    elapsed = time.monotonic() - started
    assert machine_id in result.stdout
    assert elapsed < 2.0, f"a cached completion took {elapsed:.2f} s"


def test_scripts_are_what_the_generator_writes():
    rendered = gendocs.render()
    for path in (BASH, ZSH, FISH):
        assert path.read_text(encoding="utf-8") == rendered[f"completions/{path.name}"], (
            "run python -m valyent_cli.devtools.gendocs"
        )


def test_the_completion_command_does_not_use_the_development_tools(tmp_path):
    """`valyent completion` builds its script from run-time modules: devtools/ is for development only."""
    code = ("import sys; sys.argv = ['valyent', 'completion', 'bash']\n"
            "from valyent_cli import main\n"
            "try:\n    main.main()\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('DEVTOOLS=%s' % any(m.startswith('valyent_cli.devtools') for m in sys.modules))")
    proc = run_python(code, env=cli_environ(tmp_path))
    assert "complete -F" in proc.stdout
    assert proc.stderr.endswith("DEVTOOLS=False"), proc.stderr


def test_bash_completes_drivers_profile_keys_and_more_fixed_choices(env):
    """Issue 24, item 26: `local start --driver`, `profiles set/unset KEY`, `profiles create --cpu-kind`."""
    from valyent_cli.config import PROFILE_KEYS, SETTABLE_KEYS
    from valyent_cli.local.drivers import DRIVERS

    assert set(bash_complete("valyent local start --driver ", env)) == set(DRIVERS) == set(complete.DRIVERS)
    assert bash_complete("valyent local serve --driver po", env) == ["podman"]
    assert set(bash_complete("valyent profiles set ", env)) == set(SETTABLE_KEYS)
    assert bash_complete("valyent profiles set cpu", env) == ["cpu_kind"]
    assert "token" in bash_complete("valyent profiles unset ", env) and set(
        bash_complete("valyent profiles unset ", env)) == set(PROFILE_KEYS)
    assert "eco" in bash_complete("valyent profiles create x --cpu-kind ", env)


def test_every_option_that_names_a_fixed_list_completes_it():
    """An option or argument whose help lists its values ("one of: ...", "a, b or c") completes them."""
    from valyent_cli.cli.tree import live_tree

    lacking = []
    for node in live_tree().walk():
        for item in [*node.options, *node.args]:
            listed = re.search(r"(?i)\bone of: |: auto \(|bearer \(", item.help)
            if listed and item.values.kind not in ("choices", "dynamic"):
                lacking.append((node.key, getattr(item, "names", getattr(item, "name", ""))))
    assert not lacking, lacking
