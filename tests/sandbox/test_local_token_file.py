"""Issue 17, item 3: the sandbox's token file and the directories that hold secrets.

A token file that is not the user's (or not a regular file) is refused; one of ours readable by others is made
0600; a data dir that cannot be made 0700 is an error; the configuration directory is tightened to 0700.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest
from support.env import cli_environ, free_port
from support.cli import run_cli


def local_env(tmp_path) -> dict:
    return cli_environ(tmp_path / "config")


def start(tmp_path, data_dir, env=None):
    return run_cli("local", "start", "--data-dir", str(data_dir), "--port", str(free_port()),
                   env=env or local_env(tmp_path), timeout=60)


@pytest.fixture()
def data_dir(tmp_path):
    path = tmp_path / "data"
    yield path
    run_cli("local", "stop", "--data-dir", str(path), env=local_env(tmp_path))


def test_a_token_file_of_another_user_is_refused(tmp_path, data_dir):
    data_dir.mkdir(mode=0o700)
    token = data_dir / "token"
    token.write_text("vlt_chosen-by-someone-else\n")
    os.chmod(token, 0o666)
    os.chown(token, 65534, 65534)
    result = start(tmp_path, data_dir)
    assert result.returncode == 1, result
    assert str(token) in result.stderr and "another user" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (data_dir / "server.pid").exists()


def test_a_token_symlink_is_refused(tmp_path, data_dir):
    data_dir.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("vlt_x\n")
    os.symlink(elsewhere, data_dir / "token")
    result = start(tmp_path, data_dir)
    assert result.returncode == 1 and "token" in result.stderr and "Traceback" not in result.stderr, result


def test_our_token_file_readable_by_others_is_made_0600(tmp_path, data_dir):
    data_dir.mkdir(mode=0o700)
    token = data_dir / "token"
    token.write_text("vlt_ours-but-too-open\n")
    os.chmod(token, 0o644)
    result = start(tmp_path, data_dir)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert token.read_text().strip() == "vlt_ours-but-too-open"


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1)")
def test_a_data_dir_that_cannot_be_made_private_is_an_error(tmp_path):
    # In a user namespace, our root cannot chmod a directory of a user the namespace does not map: EPERM.
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not available")
    data = tmp_path / "shared"
    data.mkdir()
    os.chmod(data, 0o777)
    os.chown(data, 12345, 12345)
    os.chmod(tmp_path, 0o755)
    result = run_cli("local", "start", "--data-dir", str(data), "--port", str(free_port()), env=local_env(tmp_path),
                     wrapper=("unshare", "--user", "--map-root-user"))
    assert result.returncode == 1, result
    assert f"cannot make the sandbox data dir {data} private" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (data / "token").exists()


def test_a_loose_config_dir_is_tightened(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    os.chmod(config, 0o755)
    env = local_env(tmp_path)
    result = run_cli("profiles", "create", "work", "--endpoint", "https://example.com/v1", env=env)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
