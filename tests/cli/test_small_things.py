"""The smaller things a newcomer met (issue 24, item 28), one test each, against the real sandbox through the real
CLI."""

from __future__ import annotations

import json
import re

from support.cli import ok, run_cli, run_inproc
from support.env import cli_environ


def test_a_sandbox_gateway_says_the_protocol_its_url_has(fleet_env):
    env, _, _ = fleet_env
    gw = json.loads(ok(run_inproc("gateways", "create", "--name", "web", "--port", "8080", "--json", env=env)).stdout)
    assert gw["url"].startswith("http://") and gw["protocol"] == "http"
    shown = ok(run_inproc("gateways", "show", "web", env=env)).stdout
    assert re.search(r"Protocol:\s+http\n", shown), shown


def test_fleets_show_without_a_name_shows_the_fleet_in_use(fleet_env, tmp_path):
    env, _, fleet = fleet_env
    shown = ok(run_inproc("fleets", "show", "--json", env=env))
    assert json.loads(shown.stdout)["name"] == fleet
    none = run_inproc("fleets", "show", env={k: v for k, v in env.items() if k != "VALYENT_FLEET"})
    assert none.returncode == 2 and "no fleet selected" in none.stderr, none.stderr


def test_a_small_build_context_is_not_zero_kib(cli_env, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (tmp_path / "app.txt").write_text("x" * 300)
    r = run_cli("builds", "create", str(tmp_path), "--image", "app", env=cli_env)
    sent = re.search(r"Sending the build context \(([^)]*)\)", r.stderr)
    assert sent and sent.group(1) != "0 KiB" and re.fullmatch(r"\d+ B", sent.group(1)), r.stderr


def test_the_sandbox_node_is_in_the_region_machines_get(fleet_env):
    env, client, fleet = fleet_env
    nodes = json.loads(ok(run_inproc("nodes", "list", "--json", env=env)).stdout)
    machine = json.loads(ok(run_inproc("machines", "create", "--json", "--detach", "--image", "nginx", env=env)).stdout)
    assert {n["region"] for n in nodes} == {machine["region"]} == {"gra-1"}


def test_the_token_is_shown_one_way(tmp_path, sandbox):
    env = cli_environ(tmp_path / "config")
    login = ok(run_cli("auth", "login", "--endpoint", sandbox.url, "--token-stdin", "--profile", "sb", env=env,
                       input=sandbox.token))
    status = ok(run_inproc("auth", "status", "-p", "sb", env=env)).stdout
    shown = ok(run_inproc("profiles", "show", "sb", env=env)).stdout
    masked = re.search(r"Token:\s+(\S+)", shown).group(1)
    assert masked.endswith(sandbox.token[-4:]) and "…" in masked
    assert re.search(rf"Token:\s+{re.escape(masked)}\s", status), status
    assert f"(token {masked})" in login.stderr
    assert "sha256:" not in status


def test_a_stop_that_ended_in_a_kill_says_so(fleet_env):
    env, _, _ = fleet_env
    stubborn = ok(run_inproc("machines", "create", "-q", "--image", "alpine", "--", "sh", "-c",
                             "trap '' TERM; while true; do sleep 0.1; done", env=env)).stdout.strip()
    killed = ok(run_inproc("machines", "stop", stubborn, "--timeout", "1", env=env))
    assert f"Stopped {stubborn}: it did not end on SIGTERM within 1 s: killed (SIGKILL)" in killed.stderr
    polite = ok(run_inproc("machines", "create", "-q", "--image", "alpine", "--", "sleep", "100", env=env)).stdout.strip()
    stopped = ok(run_inproc("machines", "stop", polite, "--timeout", "5", env=env))
    assert f"Stopped {polite}" in stopped.stderr and "SIGKILL" not in stopped.stderr
