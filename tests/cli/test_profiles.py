"""`valyent profiles`: every command through the real entry point (main(), and a few as real processes)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from support.cli import Result, run_cli, run_main, spawn
from support.env import cli_environ

from valyent_cli import config

TOKEN = "vly_0123456789secret9876wxyz"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated config dir and working directory; no VALYENT_* variable from the outside."""
    for name in list(os.environ):
        if name.startswith("VALYENT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_COLOR", "1")
    directory = tmp_path / "cfg"
    monkeypatch.setenv("VALYENT_CONFIG_DIR", str(directory))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return directory


@pytest.fixture()
def cli(home: Path):
    """Run `valyent ARGS` in this process through main(), the real entry point with its error handler, with the
    environment as the test has set it (``home``, then its own monkeypatching)."""

    def run(*args: str, input: str | None = None) -> Result:
        return run_main(list(args), dict(os.environ), stdin=input or "")

    return run


def process_env(home: Path) -> dict[str, str]:
    return cli_environ(home)


def run_process(*args: str, env: dict[str, str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, input=input or "")


def fields(text: str) -> dict[str, str]:
    """`Key: value` lines as a dict."""
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def stored(home: Path) -> dict:
    return tomllib.loads((home / "config.toml").read_text())


# -- list, create, show ----------------------------------------------------------------------------------------


def test_list_with_no_profiles(cli) -> None:
    r = cli("profiles", "list")
    assert (r.code, r.out) == (0, "")
    assert "No profiles yet" in r.err
    r = cli("profiles", "list", "--json")
    assert (r.code, json.loads(r.out)) == (0, [])


def test_create_list_and_show(cli, home: Path) -> None:
    r = cli("profiles", "create", "prod", "--endpoint", "https://api.example/v1", "--namespace", "acme", "--token-stdin", input=TOKEN + "\n")
    assert r.code == 0, r.err
    assert r.out == "" and "Created profile prod (active)" in r.err
    r = cli("profiles", "create", "lab", "--fleet", "f1", "--region", "eu-2", "--initd-endpoint", "http://127.0.0.1:1/i/{machine_id}", "--timeout", "5")
    assert r.code == 0, r.err
    assert stored(home)["active"] == "prod"
    assert stored(home)["profiles"]["prod"]["token"] == TOKEN

    r = cli("profiles", "list")
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0].split() == ["NAME", "ENDPOINT", "NAMESPACE", "FLEET", "TOKEN"]
    assert lines[1].split() == ["lab", config.DEFAULT_ENDPOINT, "-", "f1", "no"]
    assert lines[2].split() == ["*", "prod", "https://api.example/v1", "acme", "-", "yes"]

    r = cli("profiles", "list", "--json")
    rows = json.loads(r.out)
    assert [(p["name"], p["active"], p["has_token"]) for p in rows] == [("lab", False, False), ("prod", True, True)]
    assert all("token" not in p for p in rows)
    assert rows[0]["timeout"] == 5.0 and rows[0]["region"] == "eu-2"

    r = cli("profiles", "show")
    assert r.code == 0
    shown = fields(r.out)
    assert (shown["Name"], shown["Active"], shown["Token"], shown["Namespace"]) == ("prod", "yes", "vly_…wxyz", "acme")
    r = cli("profiles", "show", "prod", "--json")
    assert json.loads(r.out) == {
        "name": "prod",
        "active": True,
        "endpoint": "https://api.example/v1",
        "namespace": "acme",
        "token": "vly_…wxyz",
    }
    r = cli("-p", "lab", "profiles", "show", "--json")
    assert json.loads(r.out)["name"] == "lab"
    for args in (("profiles", "list"), ("profiles", "list", "--json"), ("profiles", "show"), ("profiles", "show", "--json")):
        r = cli(*args)
        assert TOKEN not in r.out + r.err and TOKEN[-8:] not in r.out + r.err


def test_create_refuses_bad_names_values_and_duplicates(cli, home: Path) -> None:
    r = cli("profiles", "create", "bad name")
    assert r.code == 2 and "invalid profile name" in r.err
    r = cli("profiles", "create", "x", "--endpoint", "ftp://nope")
    assert r.code == 2 and "--endpoint" in r.err and "http:// or https://" in r.err
    r = cli("profiles", "create", "x", "--initd-endpoint", "https://initd.example")
    assert r.code == 2 and "{machine_id}" in r.err
    r = cli("profiles", "create", "x", "--token-stdin", input="two words\n")
    assert r.code == 2 and "--token-stdin" in r.err
    assert not (home / "config.toml").exists()
    assert cli("profiles", "create", "x").code == 0
    r = cli("profiles", "create", "x")
    assert r.code == 2 and "already exists" in r.err


def test_create_use_makes_it_active(cli, home: Path) -> None:
    cli("profiles", "create", "a")
    cli("profiles", "create", "b", "--use")
    assert stored(home)["active"] == "b"


def test_show_without_a_profile_is_a_usage_error(cli) -> None:
    r = cli("profiles", "show")
    assert r.code == 2 and "no profile in use" in r.err
    r = cli("profiles", "show", "ghost")
    assert r.code == 2 and "no profile named 'ghost'" in r.err


# -- use, set, unset -------------------------------------------------------------------------------------------


def test_use(cli, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("profiles", "create", "a")
    cli("profiles", "create", "b")
    r = cli("profiles", "use", "b")
    assert r.code == 0 and "Now using profile b" in r.err
    assert stored(home)["active"] == "b"
    r = cli("profiles", "use", "nope")
    assert r.code == 2 and "no profile named 'nope'" in r.err and "profiles: a, b" in r.err
    monkeypatch.setenv("VALYENT_PROFILE", "a")
    r = cli("profiles", "use", "b")
    assert r.code == 0 and "VALYENT_PROFILE=a is set and takes precedence" in r.err


def test_set_and_unset(cli, home: Path) -> None:
    cli("profiles", "create", "a")
    cli("profiles", "create", "b")
    assert cli("profiles", "set", "fleet", "web").code == 0
    assert cli("profiles", "set", "timeout", "12").code == 0
    assert cli("profiles", "set", "allow_http", "true").code == 0
    assert cli("profiles", "set", "namespace", "ns-b", "--profile", "b").code == 0
    assert cli("--profile", "b", "profiles", "set", "region", "gra-1").code == 0
    profiles = stored(home)["profiles"]
    assert profiles["a"] == {"fleet": "web", "timeout": 12.0, "allow_http": True}
    assert profiles["b"] == {"namespace": "ns-b", "region": "gra-1"}

    r = cli("profiles", "unset", "fleet")
    assert r.code == 0 and "Removed fleet from profile a" in r.err
    r = cli("profiles", "unset", "fleet")
    assert r.code == 0 and "nothing to remove" in r.err
    assert "fleet" not in stored(home)["profiles"]["a"]


def test_set_rejects_unknown_keys_listing_the_valid_ones(cli, home: Path) -> None:
    cli("profiles", "create", "a")
    before = (home / "config.toml").read_bytes()
    r = cli("profiles", "set", "colour", "blue")
    assert r.code == 2
    assert "unknown key 'colour'; valid keys: endpoint, namespace, fleet, region, cpu_kind, initd_endpoint, auth_scheme, ca_cert, client_cert, client_key, timeout, allow_http, local" in r.err
    r = cli("profiles", "unset", "colour")
    assert r.code == 2 and "valid keys: endpoint, token" in r.err
    r = cli("profiles", "set", "token", "abc")
    assert r.code == 2 and "auth login" in r.err
    r = cli("profiles", "set", "timeout", "soon")
    assert r.code == 2 and "must be a duration" in r.err and "30s" in r.err
    r = cli("profiles", "set", "endpoint", "nope")
    assert r.code == 2
    r = cli("profiles", "set", "fleet", "x", "--profile", "ghost")
    assert r.code == 2 and "no profile named 'ghost'" in r.err
    assert (home / "config.toml").read_bytes() == before


def test_set_without_any_profile_names_the_fix(cli) -> None:
    r = cli("profiles", "set", "fleet", "web")
    assert r.code == 2 and "--profile" in r.err


# -- delete ----------------------------------------------------------------------------------------------------


def test_delete_needs_yes_without_a_terminal(cli, home: Path) -> None:
    cli("profiles", "create", "a")
    cli("profiles", "create", "b")
    r = cli("profiles", "delete", "a")
    assert r.code == 2
    assert "refusing to delete without --yes when not on a terminal" in r.err
    assert "a" in stored(home)["profiles"]
    r = cli("profiles", "delete", "a", "--yes")
    assert r.code == 0 and "Deleted profile a" in r.err and "No profile is active" in r.err
    assert stored(home) == {"profiles": {"b": {}}}
    r = cli("profiles", "delete", "a", "--yes")
    assert r.code == 2 and "no profile named 'a'" in r.err


def test_delete_asks_on_a_terminal(cli, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("profiles", "create", "a")
    cli("profiles", "create", "b")

    def on_a_terminal(answer: str) -> Result:
        stdin = io.StringIO(answer)
        stdin.isatty = lambda: True  # type: ignore[method-assign]
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
        from valyent_cli.main import main

        monkeypatch.setattr(sys, "stdin", stdin)
        with pytest.raises(SystemExit) as info:
            main(["profiles", "delete", "b"])
        return Result(int(info.value.code or 0), "", "")

    assert on_a_terminal("n\n").code == 1
    assert "b" in stored(home)["profiles"]
    assert on_a_terminal("y\n").code == 0
    assert "b" not in stored(home)["profiles"]


# -- import ----------------------------------------------------------------------------------------------------


def test_import_the_go_cli_config(cli, home: Path, tmp_path: Path) -> None:
    go = tmp_path / "config.yaml"
    go.write_text(f'key: "{TOKEN}"\nnamespace: acme\n')
    r = cli("profiles", "import", "--path", str(go))
    assert r.code == 0, r.err
    assert "as profile default (active)" in r.err and TOKEN not in r.err
    assert stored(home)["profiles"]["default"] == {"token": TOKEN, "namespace": "acme"}
    r = cli("profiles", "import", "--path", str(go))
    assert r.code == 2 and "already exists" in r.err
    r = cli("profiles", "import", "--path", str(go), "--name", "old", "--use")
    assert r.code == 0 and stored(home)["active"] == "old"
    r = cli("profiles", "import", "--path", str(tmp_path / "none.yaml"), "--name", "x")
    assert r.code == 2 and "no such file" in r.err


def test_import_reads_the_home_directory_by_default(cli, home: Path, tmp_path: Path, monkeypatch) -> None:
    fake_home = tmp_path / "home"
    (fake_home / ".valyent").mkdir(parents=True)
    (fake_home / ".valyent" / "config.yaml").write_text("key: tok-from-go-cli-1234\n")
    monkeypatch.setenv("HOME", str(fake_home))
    r = cli("profiles", "import")
    assert r.code == 0, r.err
    assert stored(home)["profiles"]["default"] == {"token": "tok-from-go-cli-1234"}


# -- the file, as real processes -------------------------------------------------------------------------------


def test_a_corrupt_file_is_reported_and_left_alone(home: Path, tmp_path: Path) -> None:
    home.mkdir()
    path = home / "config.toml"
    path.write_text('active = "a"\n\n[profiles.a]\nendpoint = https://no-quotes\n')
    before = path.read_bytes()
    env = process_env(home)
    for args in (("profiles", "create", "b"), ("profiles", "list"), ("profiles", "set", "fleet", "x"), ("auth", "status")):
        r = run_process(*args, env=env)
        assert r.returncode == 2, (args, r.stderr)
        assert f"{path}, line 4" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and r.stdout == ""
    assert path.read_bytes() == before


def test_file_and_directory_modes(home: Path) -> None:
    r = run_process("profiles", "create", "a", "--token-stdin", env=process_env(home), input=TOKEN)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "config.toml").stat().st_mode) == 0o600


def test_fifty_concurrent_creates_all_land(home: Path) -> None:
    env = process_env(home)
    procs = [
        spawn(
            ["profiles", "create", f"p{i:02d}", "--fleet", f"fleet-{i}"],
            env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(50)
    ]
    failures = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failures.append(err)
    assert not failures, failures[:3]
    doc = stored(home)
    assert sorted(doc["profiles"]) == [f"p{i:02d}" for i in range(50)]
    assert all(doc["profiles"][f"p{i:02d}"] == {"fleet": f"fleet-{i}"} for i in range(50))
    assert doc["active"] in doc["profiles"]
    assert sorted(p.name for p in home.iterdir()) == ["config.toml", "config.toml.lock"]
