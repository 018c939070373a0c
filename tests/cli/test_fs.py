"""`valyent fs`: ls, cat, get, put, mkdir, rm, stat against a real sandbox machine.

Most commands run in this process through main() (the real entry point and its error handler) for speed; stdin
uploads, Ctrl-C and a download cut by the server run as real processes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.cli import ok, read_then_close, run_cli, run_main_bytes, spawn
from support.util import machine_payload

ALL_BYTES = bytes(range(256)) * 16


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()


@pytest.fixture(scope="module")
def machine(sandbox):
    """A running machine in a fleet of this module's own; destroyed at the end."""
    from valyent_cli.api import Client

    client = Client(sandbox.token, endpoint=sandbox.url, initd_endpoint=sandbox.initd)
    fleet = client.fleets.create(f"fs-{secrets.token_hex(3)}")
    created = client.machines.create(fleet["id"], machine_payload(["sh", "-c", "sleep 600"], image="busybox"))
    client.machines.wait(fleet["id"], created["id"], "running", 30)
    created["fleet_name"] = fleet["name"]
    yield created, client
    client.machines.delete(fleet["id"], created["id"], force=True)
    client.close()


@pytest.fixture()
def env(cli_env, machine) -> dict:
    m, _ = machine
    return {**cli_env, "VALYENT_FLEET": m["fleet_name"]}


@pytest.fixture()
def cli(env, monkeypatch, tmp_path):
    """Run `valyent ARGS` in this process, through main(); stdout as bytes."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    def run(*args: str) -> Result:
        result = Result(*run_main_bytes(list(args), env))
        assert "Traceback" not in result.err, result.err
        return result

    return run


def test_mkdir_put_ls_stat(cli, machine, tmp_path):
    m, client = machine
    mid = m["id"]
    ok(cli("fs", "mkdir", mid, "/ls/sub/deep"))
    local = tmp_path / "data.bin"
    local.write_bytes(ALL_BYTES * 100)  # 400 KiB
    ok(cli("fs", "put", mid[:12], str(local), "/ls/"))  # a unique prefix; REMOTE ending in / keeps the name

    names = ok(cli("fs", "ls", mid, "/ls")).text
    assert names.splitlines() == ["data.bin", "sub/"]

    long = ok(cli("fs", "ls", "-l", mid, "/ls")).text.splitlines()
    assert long[0].split() == ["NAME", "SIZE", "MODIFIED"]
    assert re.match(r"data\.bin\s+400\.0 KiB\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", long[1]), long
    assert re.match(r"sub/\s+-\s+\d{4}-", long[2]), long

    as_json = json.loads(ok(cli("fs", "ls", mid, "/ls", "--json")).text)
    assert as_json == client.fs(mid).ls("/ls")  # verbatim
    assert {e["name"]: e["is_dir"] for e in as_json} == {"data.bin": False, "sub": True}

    stat = ok(cli("fs", "stat", mid, "/ls/data.bin")).text
    assert "Type:     file" in stat and "409600 bytes (400.0 KiB)" in stat
    stat_json = json.loads(ok(cli("fs", "stat", mid, "/ls/sub", "--json")).text)
    assert stat_json["is_dir"] is True and stat_json["path"] == "/ls/sub"

    # ls of a file shows the file, as ls does; an empty directory says so on stderr only.
    assert ok(cli("fs", "ls", mid, "/ls/data.bin")).text == "data.bin\n"
    empty = ok(cli("fs", "ls", mid, "/ls/sub/deep"))
    assert empty.out == b"" and "empty" in empty.err


def test_cat_is_binary_safe(cli, machine):
    m, client = machine
    client.fs(m["id"]).write("/data/all.bin", ALL_BYTES)
    result = ok(cli("fs", "cat", m["id"], "/data/all.bin"))
    assert result.out == ALL_BYTES
    assert result.err == ""


def test_cat_into_a_closed_pipe_is_quiet(env, machine):
    """`valyent fs cat M big | head -c 10`: exit 0 and no error when the reader goes away."""
    m, client = machine
    client.fs(m["id"]).write("/data/big.bin", os.urandom(8 * 1024 * 1024))
    code, err = read_then_close(["fs", "cat", m["id"], "/data/big.bin"], env, lambda out: len(out.read(10)) == 10)
    assert code == 0, err
    assert err == ""


def test_get_to_file_directory_and_stdout(cli, machine, tmp_path):
    m, client = machine
    mid = m["id"]
    payload = os.urandom(300_000) + ALL_BYTES
    client.fs(mid).write("/get/blob.bin", payload)
    work = Path.cwd()

    ok(cli("fs", "get", mid, "/get/blob.bin"))  # default: the remote name, in the cwd
    assert (work / "blob.bin").read_bytes() == payload

    target_dir = tmp_path / "into"
    target_dir.mkdir()
    ok(cli("fs", "get", mid, "/get/blob.bin", str(target_dir)))
    assert (target_dir / "blob.bin").read_bytes() == payload

    ok(cli("fs", "get", mid, "/get/blob.bin", str(tmp_path / "renamed.bin")))
    assert (tmp_path / "renamed.bin").read_bytes() == payload
    assert oct((tmp_path / "renamed.bin").stat().st_mode & 0o777) != oct(0o600)  # not the temp file's mode

    to_stdout = ok(cli("fs", "get", mid, "/get/blob.bin", "-"))
    assert to_stdout.out == payload

    # No temporary file is left behind anywhere.
    assert not [p for p in list(work.iterdir()) + list(tmp_path.iterdir()) + list(target_dir.iterdir())
                if p.name.endswith(".part")]

    bad = cli("fs", "get", mid, "/get/blob.bin", str(tmp_path / "missing-dir" / "x.bin"))
    assert bad.code == 2 and "does not exist" in bad.err


def test_put_from_file_and_stdin(env, machine, tmp_path):
    m, client = machine
    mid = m["id"]
    payload = os.urandom(3 * 1024 * 1024) + ALL_BYTES  # a few MB, every byte value
    piped = run_cli("fs", "put", mid, "-", "/put/stdin.bin", env=env, input=payload)
    assert piped.returncode == 0, piped.stderr
    assert client.fs(mid).read("/put/stdin.bin") == payload

    local = tmp_path / "from-file.bin"
    local.write_bytes(payload[::-1])
    done = run_cli("fs", "put", mid, str(local), "/put/", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # nothing on stdout: it is not data
    assert client.fs(mid).read("/put/from-file.bin") == payload[::-1]


def test_put_bad_local_input_is_usage_error(cli, machine, tmp_path):
    m, _ = machine
    missing = cli("fs", "put", m["id"], str(tmp_path / "nope.txt"), "/x")
    assert missing.code == 2 and "nope.txt" in missing.err
    directory = cli("fs", "put", m["id"], str(tmp_path), "/x")
    assert directory.code == 2 and "directory" in directory.err
    stdin_dir = cli("fs", "put", m["id"], "-", "/x/")
    assert stdin_dir.code == 2


def test_rm_file_and_directory(cli, machine):
    m, client = machine
    mid = m["id"]
    fs = client.fs(mid)
    fs.write("/rm/dir/inner.txt", b"x")
    fs.write("/rm/file.txt", b"y")

    ok(cli("fs", "rm", mid, "/rm/file.txt"))
    assert [e["name"] for e in fs.ls("/rm")] == ["dir"]

    refused = cli("fs", "rm", mid, "/rm/dir")
    assert refused.code == 2
    assert "-r" in refused.err and "/rm/dir" in refused.err
    assert fs.stat("/rm/dir/inner.txt")["size"] == 1  # untouched

    ok(cli("fs", "rm", "-r", mid, "/rm/dir"))
    assert fs.ls("/rm") == []

    root = cli("fs", "rm", "-r", mid, "/")
    assert root.code == 2


@pytest.mark.parametrize(
    "args",
    [("ls",), ("ls", "-l"), ("cat",), ("stat",), ("get",), ("rm",), ("rm", "-r")],
    ids=lambda a: " ".join(a),
)
def test_missing_path_is_exit_4_naming_it(cli, machine, args):
    m, _ = machine
    command, *flags = args
    result = cli("fs", command, *flags, m["id"], "/no/such/thing.txt")
    assert result.code == 4, result.err
    assert "/no/such/thing.txt" in result.err
    assert result.out == b""
    assert not list(Path.cwd().iterdir())  # `get` created nothing


def test_unknown_machine_is_exit_4(cli):
    result = cli("fs", "ls", "zzzzzzzzzz", "/")
    assert result.code == 4
    assert "zzzzzzzzzz" in result.err


def test_interrupted_get_leaves_no_partial_file(sandbox, env, machine, tmp_path):
    """Ctrl-C in the middle of a download: exit 130, no traceback, nothing under the target name."""
    m, _ = machine
    big = Path(sandbox.data_dir) / "machines" / m["id"] / "root" / "big.bin"
    with open(big, "wb") as f:
        f.truncate(2 * 1024**3)  # sparse: instant to make, long to send
    try:
        target = tmp_path / "big.bin"
        proc = spawn(["fs", "get", m["id"], "/big.bin", str(target)], env, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            parts = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
            if parts and parts[0].stat().st_size > 0:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        else:
            pytest.fail("the download never started")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert "Interrupted." in err
        assert list(tmp_path.iterdir()) == []  # neither the target nor the temporary file
    finally:
        big.unlink()


def test_download_cut_by_the_server_leaves_no_partial_file(fault_server, cli_env, tmp_path):
    """The connection ends after 100 KB of a 1 MB file: exit 1 naming the endpoint, no file."""
    from support.faultserver import Reply

    machine_id = "01jfaultmachine0000000000"

    def handler(request):
        if request.path.endswith(f"/machines/{machine_id}"):
            return Reply(json={"id": machine_id, "fleet": "fleet_x", "state": "running"})
        if request.path.endswith("/fs/read"):
            return Reply(200, body=b"x" * 1_000_000, headers={"Content-Type": "application/octet-stream"},
                         truncate=100_000)
        return None

    fault_server.handler = handler
    env = {**cli_env, "VALYENT_API_URL": fault_server.url + "/v1", "VALYENT_FLEET": "f",
           "VALYENT_INITD_URL": fault_server.url + "/initd/{machine_id}"}
    target = tmp_path / "out.bin"
    result = run_cli("fs", "get", machine_id, "/data.bin", str(target), env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "127.0.0.1" in result.stderr
    assert list(tmp_path.iterdir()) == []


# issue 24, item 28: directories, with -r, as `cp -r`
def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def test_put_and_get_a_directory_with_r(cli, machine, tmp_path):
    m, _ = machine
    src = tmp_path / "site"
    (src / "css" / "deep").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "index.html").write_text("<h1>hi</h1>\n")
    (src / "css" / "main.css").write_bytes(ALL_BYTES)
    (src / "css" / "deep" / "x.txt").write_text("deep\n")
    remote = f"/tmp/r-{secrets.token_hex(3)}"
    up = cli("fs", "put", "-r", m["id"], str(src), remote + "/")
    assert up.code == 0, up.err
    assert f"to {remote}/site: 3 files" in up.err
    listed = cli("fs", "ls", m["id"], remote + "/site/css", "--json")
    assert sorted(e["name"] for e in json.loads(listed.out)) == ["deep", "main.css"]

    back = tmp_path / "back"
    back.mkdir()
    down = cli("fs", "get", "-r", m["id"], remote + "/site", str(back))
    assert down.code == 0, down.err
    assert _tree(back / "site") == _tree(src)
    again = cli("fs", "get", "-r", m["id"], remote + "/site", str(back))
    assert again.code == 2 and "--force" in again.err  # nothing replaced without it
    assert cli("fs", "get", "-r", "--force", m["id"], remote + "/site", str(back)).code == 0
    # without -r, a directory says how
    plain = cli("fs", "put", m["id"], str(src), remote + "/")
    assert plain.code == 2 and "-r" in plain.err


def test_get_r_refuses_names_that_are_not_plain(fault_server, cli_env, tmp_path):
    """A machine (its agent) that lists `..` or `a/b` must not make the download write outside its target."""
    from support.faultserver import Reply

    def handler(request):
        if request.path.endswith("/machines/01jfsbadnames0000000000000"):
            return Reply(json={"id": "01jfsbadnames0000000000000", "fleet": "f", "state": "running"})
        if request.path.endswith("/fs/ls"):
            return Reply(json=[{"name": "../escape", "path": "/d/../escape", "is_dir": False, "size": 1,
                                "mod_time": 0}])
        return None

    fault_server.handler = handler
    env = {**cli_env, "VALYENT_API_URL": fault_server.url + "/v1", "VALYENT_FLEET": "f",
           "VALYENT_INITD_URL": fault_server.url + "/initd/{machine_id}"}
    target = tmp_path / "in"
    target.mkdir()
    r = run_cli("fs", "get", "-r", "01jfsbadnames0000000000000", "/d", str(target), env=env)
    assert r.returncode == 1 and "not a plain file name" in r.stderr, r.stderr
    assert not (tmp_path / "escape").exists() and list(target.iterdir()) == []
