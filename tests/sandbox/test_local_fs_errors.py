"""Issue 17, items 4 and 17: the sandbox's filesystem API under requests it cannot serve.

What the client caused is a 400 that says why (a name too long, a FIFO to read, a path through a file); a file
whose name is not UTF-8 never makes its directory unlistable; and no answer, 400 or 500, carries a host path.
"""

from __future__ import annotations

import os

import pytest
from support.cli import run_inproc



@pytest.fixture()
def machine(one_machine, sandbox):
    """(env, machine id, the machine's root directory in the sandbox's data dir)."""
    env, mid, _ = one_machine
    return env, mid, sandbox.data_dir / "machines" / mid / "root"


def initd(sandbox, mid, method, path, **kwargs):
    with sandbox.initd_client(mid) as http:
        return http.request(method, path, **kwargs)


def no_host_path(text: str, sandbox) -> None:
    assert str(sandbox.data_dir) not in text and os.path.realpath(sandbox.data_dir) not in text, text


def test_a_name_that_is_not_utf8_leaves_its_directory_listable(machine, sandbox):
    env, mid, root = machine
    (root / "tmp").mkdir(exist_ok=True)
    os.close(os.open(os.path.join(os.fsencode(root / "tmp"), b"bad-\xff-name"), os.O_CREAT | os.O_WRONLY, 0o644))
    (root / "tmp" / "good").write_text("x")
    result = run_inproc("fs", "ls", mid, "/tmp", env=env)
    assert result.returncode == 0, result.stderr
    assert "good" in result.stdout.split() and "bad-\ufffd-name" in result.stdout.split()


@pytest.mark.parametrize("argv", [["fs", "stat"], ["fs", "ls"], ["fs", "mkdir"], ["fs", "cat"]], ids=lambda a: a[1])
def test_a_name_too_long_is_a_400_not_a_500(machine, sandbox, argv):
    env, mid, _ = machine
    path = "/tmp/" + "n" * 300
    result = run_inproc(*argv[:2], mid, path, env=env)
    assert result.returncode in (1, 4), result
    assert "HTTP 500" not in result.stderr and "internal error" not in result.stderr, result.stderr
    no_host_path(result.stderr, sandbox)
    if argv[1] != "cat":
        response = initd(sandbox, mid, "POST" if argv[1] == "mkdir" else "GET", f"/fs/{argv[1]}",
                         params={"path": path}, json={"dir": path})
        assert response.status_code in (400, 404), response.text
        no_host_path(response.text, sandbox)


def test_reading_a_fifo_is_a_400_at_once(machine, sandbox, tmp_path):
    env, mid, root = machine
    (root / "tmp").mkdir(exist_ok=True)
    os.mkfifo(root / "tmp" / "pipe")
    result = run_inproc("fs", "get", mid, "/tmp/pipe", str(tmp_path / "out"), env=env, timeout=20)
    assert result.returncode == 1, result
    assert "not a regular file" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_path_through_a_file_is_a_400(machine, sandbox):
    env, mid, root = machine
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp" / "afile").write_text("x")
    response = initd(sandbox, mid, "GET", "/fs/stat", params={"path": "/tmp/afile/below"})
    assert response.status_code in (400, 404), response.text
    no_host_path(response.text, sandbox)


def test_a_500_names_no_host_path(machine, sandbox, tmp_path):
    # The machine's upload directory is a file (a damaged data dir): the upload fails on the server's side.
    env, mid, root = machine
    (root.parent / "uploads").write_text("not a directory")
    local = tmp_path / "f.txt"
    local.write_text("hello")
    result = run_inproc("fs", "put", mid, str(local), "/tmp/f.txt", env=env)
    assert result.returncode == 1, result
    assert "HTTP 500" in result.stderr and "internal error" in result.stderr, result.stderr
    no_host_path(result.stderr, sandbox)
    response = initd(sandbox, mid, "POST", "/fs/write", data={"path": "/tmp/f.txt"}, files={"file": ("f", b"x")})
    assert response.status_code == 500
    no_host_path(response.text, sandbox)
    assert "/machines/" not in response.text
