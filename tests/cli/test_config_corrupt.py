"""Issue 7, configuration, through the CLI: a corrupt or unreadable config.toml stops every command with exit 2
naming the file (and the line), before any request, and is never overwritten; a failed save keeps the old file.

Covered elsewhere: the parser's line numbers and every broken shape (test_config.py), a full disk on save
(test_config.py, fsync failing with ENOSPC), 20 writer threads and 50 writer processes (test_config.py,
test_profiles.py), file modes (test_profiles.py, test_secrets.py).
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from support.cli import run_main
from support.env import cli_environ

UNREACHABLE = "http://127.0.0.1:9/v1"  # a request sent would be exit 1, not 2


@pytest.fixture()
def env(tmp_path) -> dict:
    (tmp_path / "config").mkdir(mode=0o700)
    return cli_environ(tmp_path / "config", url=UNREACHABLE, token="tok-config-0123456789", fleet="web")


COMMANDS = [["fleets", "list"], ["machines", "create", "--image", "nginx"], ["profiles", "create", "new"],
            ["profiles", "set", "namespace", "x"], ["auth", "status"], ["logs", "m1"]]


@pytest.mark.parametrize(
    "text, where",
    [
        ('active = "a"\n[profiles.a]\ntimeout = \n', "line 3: invalid TOML"),
        ('active = "a"\n[profiles.a\nendpoint = "https://x"\n', "line 2: invalid TOML"),
        ('active = "a"\n[profiles.a]\ntimeout = "soon"\n', "line 3: profile 'a': timeout"),
        ('profiles = 3\n', "line 1"),
        (b'active = "a"\n# caf\xe9\n', "line 2"),
    ],
    ids=["no-value", "unclosed-table", "bad-timeout", "wrong-shape", "not-utf8"],
)
def test_a_corrupt_config_stops_every_command_and_is_left_alone(env, text, where):
    path = Path(env["VALYENT_CONFIG_DIR"]) / "config.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    before = path.read_bytes()
    # A bad value in a profile is not a broken file: the profile commands may still edit it (that is how it is
    # fixed: `valyent profiles set timeout 30`); what uses the settings stops.
    commands = [c for c in COMMANDS if "timeout" not in where or c[0] != "profiles"]
    for argv in commands:
        result = run_main(argv, env)
        assert result.code == 2, (argv, result.err)
        assert f"{path}, {where}" in result.err, (argv, result.err)
        assert "Traceback" not in result.err and result.out == ""
    assert path.read_bytes() == before


def test_a_directory_in_place_of_the_file(env):
    path = Path(env["VALYENT_CONFIG_DIR"]) / "config.toml"
    path.mkdir()
    for argv in COMMANDS:
        result = run_main(argv, env)
        assert result.code == 2, (argv, result.err)
        assert f"Error: {path}: is a directory, not a file" in result.err
    assert path.is_dir()


def test_an_unreadable_file(env, monkeypatch):
    """Permission denied. Tests run as root, which chmod 000 does not stop: the read is made to fail as it would."""
    path = Path(env["VALYENT_CONFIG_DIR"]) / "config.toml"
    path.write_text('active = "a"\n[profiles.a]\nnamespace = "acme"\n')
    real_read_bytes = Path.read_bytes

    def read_bytes(self):
        if self.name == "config.toml":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    for argv in COMMANDS:
        result = run_main(argv, env)
        assert result.code == 2, (argv, result.err)
        assert f"{path}: cannot read the file: Permission denied" in result.err, result.err
    monkeypatch.undo()
    assert path.read_text() == 'active = "a"\n[profiles.a]\nnamespace = "acme"\n'


def test_a_full_disk_on_save_keeps_the_old_file(env, monkeypatch):
    import valyent_cli.config.toml as config_module  # the module that writes config.toml

    assert run_main(["profiles", "create", "a", "--namespace", "one"], env).code == 0
    path = Path(env["VALYENT_CONFIG_DIR"]) / "config.toml"
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(config_module.os, "fsync", disk_full)
    result = run_main(["profiles", "set", "namespace", "two"], env)
    monkeypatch.undo()
    assert result.code == 2, result.err
    assert "No space left on device" in result.err and str(path) in result.err
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml", "config.toml.lock"]  # no temp file
