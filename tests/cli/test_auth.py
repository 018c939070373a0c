"""`valyent auth` against the sandbox, as real processes: login checks the token before saving it, status says
where each value came from, the token never shows except through `auth token`, and CI needs no file at all."""

from __future__ import annotations

import json
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
from support.cli import run_inproc
from support.env import cli_environ, dead_port


@pytest.fixture()
def env(sandbox, tmp_path: Path) -> dict[str, str]:
    """The sandbox's environment with a config dir of this test's own (not created yet)."""
    return cli_environ(tmp_path / "cfg", sandbox=sandbox)


@pytest.fixture()
def token(cli_env: dict[str, str]) -> str:
    return cli_env["VALYENT_API_TOKEN"]


@pytest.fixture()
def endpoint(cli_env: dict[str, str]) -> str:
    return cli_env["VALYENT_API_URL"]


def without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


def stored(env: dict[str, str]) -> dict:
    return tomllib.loads((Path(env["VALYENT_CONFIG_DIR"]) / "config.toml").read_text())


def no_leak(result: subprocess.CompletedProcess, token: str) -> subprocess.CompletedProcess:
    assert token not in result.stdout and token not in result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_ci_needs_only_the_token_and_the_url(cli_env, tmp_path: Path, token: str, endpoint: str) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("VALYENT_")}
    env.update(
        VALYENT_API_TOKEN=token,
        VALYENT_API_URL=endpoint,
        VALYENT_CONFIG_DIR=str(tmp_path / "never-created"),
        NO_COLOR="1",
    )
    r = no_leak(run_inproc("fleets", "list", "--json", env=env, input=""), token)
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout), list)
    r = no_leak(run_inproc("auth", "status", "--json", env=env, input=""), token)
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["profile"] is None and status["endpoint"] == endpoint
    assert status["sources"]["token"] == "environment" and status["sources"]["endpoint"] == "environment"
    assert status["api"]["ok"] is True
    assert not (tmp_path / "never-created").exists()


def test_login_checks_then_saves_the_token(env, token: str, endpoint: str) -> None:
    login_env = without(env, "VALYENT_API_TOKEN")
    r = no_leak(run_inproc("auth", "login", "--token-stdin", env=login_env, input=token + "\n"), token)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert "Logged in" in r.stderr and "profile default" in r.stderr
    doc = stored(env)
    assert doc["active"] == "default"
    # The endpoint came from VALYENT_API_URL: it is saved with the token it was checked against.
    assert doc["profiles"]["default"]["token"] == token
    assert doc["profiles"]["default"]["endpoint"] == endpoint
    path = Path(env["VALYENT_CONFIG_DIR"]) / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    # Now the saved profile alone is enough.
    bare = without(env, "VALYENT_API_TOKEN", "VALYENT_API_URL")
    r = no_leak(run_inproc("auth", "status", "--json", env=bare, input=""), token)
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["profile"] == "default" and status["sources"]["token"] == "profile"
    assert status["sources"]["profile"] == "profile" and status["api"]["ok"] is True
    import hashlib

    assert status["token_fingerprint"] == hashlib.sha256(token.encode()).hexdigest()[:8]
    r = run_inproc("auth", "token", env=bare, input="")
    assert (r.returncode, r.stdout) == (0, token + "\n")
    assert token not in r.stderr


def test_login_to_a_named_profile_with_flags(env, token: str, endpoint: str) -> None:
    bare = without(env, "VALYENT_API_TOKEN", "VALYENT_API_URL")
    assert run_inproc("profiles", "create", "main", env=bare, input="").returncode == 0
    r = no_leak(
        run_inproc("auth", "login", "--token-stdin", "--endpoint", endpoint, "--profile", "sandbox", env=bare, input=token),
        token,
    )
    assert r.returncode == 0, r.stderr
    doc = stored(env)
    assert doc["active"] == "main"
    # The machine agent URL came from VALYENT_INITD_URL: saved too, so the profile works on its own.
    assert doc["profiles"]["sandbox"] == {"endpoint": endpoint, "token": token, "initd_endpoint": env["VALYENT_INITD_URL"]}
    r = run_inproc("-p", "sandbox", "auth", "status", "--json", env=bare, input="")
    assert r.returncode == 0 and json.loads(r.stdout)["sources"]["profile"] == "flag"


def test_a_refused_token_exits_3_and_saves_nothing(env, token: str) -> None:
    login_env = without(env, "VALYENT_API_TOKEN")
    r = run_inproc("auth", "login", "--token-stdin", env=login_env, input="vly_wrong_token_0000\n")
    assert r.returncode == 3, r.stderr
    assert "refused" in r.stderr and "nothing was saved" in r.stderr
    assert "vly_wrong_token_0000" not in r.stderr + r.stdout
    assert not (Path(env["VALYENT_CONFIG_DIR"]) / "config.toml").exists()

    # With a file already there, it is left byte for byte.
    assert run_inproc("auth", "login", "--token-stdin", env=login_env, input=token).returncode == 0
    path = Path(env["VALYENT_CONFIG_DIR"]) / "config.toml"
    before = path.read_bytes()
    r = run_inproc("auth", "login", "--token-stdin", "--profile", "other", env=login_env, input="vly_wrong_token_0000")
    assert r.returncode == 3
    assert path.read_bytes() == before


def test_login_without_a_terminal_names_token_stdin(env) -> None:
    r = run_inproc("auth", "login", env=without(env, "VALYENT_API_TOKEN"), input="")
    assert r.returncode == 2
    assert "--token-stdin" in r.stderr
    r = run_inproc("auth", "login", "--token-stdin", env=env, input="\n")
    assert r.returncode == 2 and "empty" in r.stderr


def test_login_that_cannot_reach_the_api_saves_nothing(env, token: str) -> None:
    dead = f"http://127.0.0.1:{dead_port()}/v1"
    r = no_leak(run_inproc("auth", "login", "--token-stdin", "--endpoint", dead, env=env, input=token), token)
    assert r.returncode == 1 and "nothing was saved" in r.stderr
    assert not (Path(env["VALYENT_CONFIG_DIR"]) / "config.toml").exists()


def test_status_reports_a_refused_token_and_an_unreachable_api(env, token: str) -> None:
    r = run_inproc("auth", "status", "--json", env={**env, "VALYENT_API_TOKEN": "vly_wrong_token_0000"}, input="")
    assert r.returncode == 3
    assert json.loads(r.stdout)["api"]["status"] == "token refused"
    dead = f"http://127.0.0.1:{dead_port()}/v1"
    r = no_leak(run_inproc("--endpoint", dead, "auth", "status", env=env, input=""), token)
    assert r.returncode == 1
    assert "unreachable" in r.stdout
    assert "(flag)" in r.stdout


def test_plain_http_to_a_remote_host_is_refused_before_any_request(env, token: str) -> None:
    remote = {**env, "VALYENT_API_URL": "http://192.0.2.10/v1"}  # TEST-NET-1: nothing answers there
    r = no_leak(run_inproc("auth", "status", "--json", env=remote, input=""), token)
    assert r.returncode == 2
    assert json.loads(r.stdout)["api"]["status"] == "not checked"
    r = no_leak(run_inproc("fleets", "list", env=remote, input=""), token)
    assert r.returncode == 2 and "refusing to send the API token over plain http" in r.stderr
    r = no_leak(run_inproc("auth", "login", "--token-stdin", env=without(remote, "VALYENT_API_TOKEN"), input=token), token)
    assert r.returncode == 2 and "allow_http" in r.stderr


def test_logout_removes_the_token_only(env, token: str) -> None:
    bare = without(env, "VALYENT_API_TOKEN")
    assert run_inproc("auth", "login", "--token-stdin", env=bare, input=token).returncode == 0
    r = run_inproc("auth", "logout", env=bare, input="")
    assert r.returncode == 0 and "removed the token from profile default" in r.stderr
    assert "token" not in stored(env)["profiles"]["default"]
    assert "endpoint" in stored(env)["profiles"]["default"]
    r = run_inproc("auth", "logout", env=bare, input="")
    assert r.returncode == 0 and "holds no token" in r.stderr
    r = run_inproc("auth", "status", "--json", env=bare, input="")
    assert r.returncode == 3 and json.loads(r.stdout)["token_fingerprint"] is None
    r = run_inproc("auth", "token", env=bare, input="")
    assert r.returncode == 3 and r.stdout == "" and "auth login" in r.stderr
    r = run_inproc("auth", "logout", env=env, input="")
    assert "VALYENT_API_TOKEN is still set" in r.stderr


def test_status_names_the_source_of_each_value(env, token: str, endpoint: str, tmp_path: Path) -> None:
    bare = without(env, "VALYENT_API_TOKEN", "VALYENT_API_URL", "VALYENT_FLEET", "VALYENT_NAMESPACE")
    r = run_inproc("profiles", "create", "p", "--endpoint", endpoint, "--namespace", "ns-profile", "--fleet", "f-profile",
                "--token-stdin", env=bare, input=token)
    assert r.returncode == 0, r.stderr
    r = run_inproc("auth", "status", "--json", "--offline", env=bare, input="")
    s = json.loads(r.stdout)
    assert (s["namespace"], s["sources"]["namespace"]) == ("ns-profile", "profile")
    r = run_inproc("auth", "status", "--json", "--offline", env={**bare, "VALYENT_NAMESPACE": "ns-env", "VALYENT_FLEET": "f-env"}, input="")
    s = json.loads(r.stdout)
    assert (s["namespace"], s["sources"]["namespace"], s["fleet"], s["sources"]["fleet"]) == (
        "ns-env", "environment", "f-env", "environment")
    r = run_inproc("--namespace", "ns-flag", "--endpoint", "https://flag.example/v1", "auth", "status", "--json", "--offline",
                env={**bare, "VALYENT_NAMESPACE": "ns-env", "VALYENT_API_URL": "https://env.example/v1"}, input="")
    s = json.loads(r.stdout)
    assert (s["namespace"], s["sources"]["namespace"]) == ("ns-flag", "flag")
    assert (s["endpoint"], s["sources"]["endpoint"]) == ("https://flag.example/v1", "flag")
    assert r.returncode == 0 and token not in r.stdout + r.stderr


def test_the_token_never_shows_except_through_auth_token(env, token: str) -> None:
    bare = without(env, "VALYENT_API_TOKEN")
    commands = [
        ("auth", "login", "--token-stdin"),
        ("--debug", "auth", "status"),
        ("--debug", "auth", "status", "--json"),
        ("profiles", "list"),
        ("profiles", "list", "--json"),
        ("profiles", "show"),
        ("profiles", "show", "--json"),
        ("--debug", "fleets", "list", "--json"),
        ("--debug", "fleets", "get", "no-such-fleet"),
    ]
    for args in commands:
        r = run_inproc(*args, env=bare, input=token)
        assert token not in r.stdout and token not in r.stderr, args
        assert token[-6:] not in r.stdout + r.stderr, args
    r = run_inproc("auth", "token", env=bare, input="")
    assert r.stdout == token + "\n"
