"""A machine's initd in the sandbox: filesystem (rooted in the machine's directory), exec and status."""

from __future__ import annotations

import os
import secrets

import pytest

from support.util import machine_payload


@pytest.fixture(scope="module")
def machine(sandbox):
    with sandbox.client() as api:
        m = api.post("/fleets/default/machines", json=machine_payload(["sleep", "600"], env=["X=1"])).json()
        yield m
        api.delete(f"/fleets/default/machines/{m['id']}", params={"force": "true"})


@pytest.fixture()
def initd(sandbox, machine):
    with sandbox.initd_client(machine["id"]) as c:
        yield c


@pytest.fixture()
def root(sandbox, machine):
    return sandbox.data_dir / "machines" / machine["id"] / "root"


def code(resp, status, code_):
    assert resp.status_code == status, resp.text
    assert resp.json()["Code"] == code_
    return resp.json()


def upload(initd, path, data: bytes, *, path_first=True):
    files = {"file": ("blob", data, "application/octet-stream")}
    return initd.post("/fs/write", data={"path": path}, files=files)


def test_status_and_exec(initd):
    assert initd.get("/status").json() == {"ok": True}
    r = initd.post("/exec", json={"cmd": ["sh", "-c", "echo $X; exit 4"], "timeout_ms": 5000}).json()
    assert r == {"stdout": "1\n", "stderr": "", "exit_code": 4}


def test_mkdir_write_read_stat_ls_rm(initd, root):
    d = f"/app-{secrets.token_hex(3)}"
    assert initd.post("/fs/mkdir", json={"dir": f"{d}/a/b"}).status_code == 200
    assert (root / d[1:] / "a" / "b").is_dir()
    data = os.urandom(3 * 1024 * 1024 + 17) + b"\x00\xff" * 10  # binary, several chunks
    assert upload(initd, f"{d}/a/b/blob.bin", data).status_code == 200
    r = initd.get("/fs/read", params={"path": f"{d}/a/b/blob.bin"})
    assert r.status_code == 200 and r.content == data
    st = initd.get("/fs/stat", params={"path": f"{d}/a/b/blob.bin"}).json()
    assert st["name"] == "blob.bin" and st["path"] == f"{d}/a/b/blob.bin" and st["is_dir"] is False
    assert st["size"] == len(data) and isinstance(st["mod_time"], int) and st["mod_time"] > 10**9
    listing = initd.get("/fs/ls", params={"path": f"{d}/a"}).json()
    assert listing == [{"name": "b", "path": f"{d}/a/b", "is_dir": True, "size": listing[0]["size"],
                        "mod_time": listing[0]["mod_time"]}]
    # write creates parent dirs and overwrites
    assert upload(initd, f"{d}/new/deep/x.txt", b"one").status_code == 200
    assert upload(initd, f"{d}/new/deep/x.txt", b"two").status_code == 200
    assert initd.get("/fs/read", params={"path": f"{d}/new/deep/x.txt"}).content == b"two"
    assert initd.post("/fs/rm", params={"path": d}).status_code == 200
    assert not (root / d[1:]).exists()
    code(initd.get("/fs/stat", params={"path": d}), 404, "NOT_FOUND")
    code(initd.post("/fs/rm", params={"path": d}), 404, "NOT_FOUND")


def test_root_listing_and_odd_names(initd, root):
    name = "we ird&name#?.txt"
    assert upload(initd, f"/odd/{name}", b"x").status_code == 200
    assert (root / "odd" / name).read_bytes() == b"x"
    assert [e["name"] for e in initd.get("/fs/ls", params={"path": "/odd"}).json()] == [name]
    assert initd.get("/fs/read", params={"path": f"/odd/{name}"}).content == b"x"
    assert "odd" in [e["name"] for e in initd.get("/fs/ls", params={"path": "/"}).json()]
    assert initd.get("/fs/stat", params={"path": "/"}).json()["path"] == "/"


def test_errors(initd, root):
    (root / "adir").mkdir(exist_ok=True)
    (root / "afile").write_text("x")
    code(initd.get("/fs/read", params={"path": "/adir"}), 400, "INVALID_ARGUMENT")
    code(initd.get("/fs/read", params={"path": "/missing"}), 404, "NOT_FOUND")
    code(initd.get("/fs/ls", params={"path": "/missing"}), 404, "NOT_FOUND")
    code(initd.get("/fs/ls", params={"path": "/afile"}), 400, "INVALID_ARGUMENT")
    code(initd.get("/fs/ls"), 400, "INVALID_ARGUMENT")
    code(initd.post("/fs/rm", params={"path": "/"}), 400, "INVALID_ARGUMENT")
    code(upload(initd, "/adir", b"x"), 400, "INVALID_ARGUMENT")
    code(initd.post("/fs/write", files={"file": ("f", b"x")}), 400, "INVALID_ARGUMENT")  # no path
    code(initd.post("/fs/write", data={"path": "/p"}), 400, "INVALID_ARGUMENT")  # not multipart with a file
    code(initd.post("/fs/write", json={"path": "/p"}), 400, "INVALID_ARGUMENT")
    code(initd.post("/fs/mkdir", json={"dir": "/afile/sub"}), 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("bad", ["/..", "../etc/passwd", "/a/../../etc", "/../../../../etc/passwd"])
def test_dotdot_cannot_escape(initd, bad):
    for call in (lambda: initd.get("/fs/read", params={"path": bad}),
                 lambda: initd.get("/fs/ls", params={"path": bad}),
                 lambda: initd.get("/fs/stat", params={"path": bad}),
                 lambda: initd.post("/fs/rm", params={"path": bad}),
                 lambda: initd.post("/fs/mkdir", json={"dir": bad + "/x"}),
                 lambda: upload(initd, bad + "/x", b"pwned")):
        code(call(), 400, "INVALID_ARGUMENT")


def test_dotdot_inside_is_fine(initd):
    assert upload(initd, "/in/side/../f.txt", b"ok").status_code == 200
    assert initd.get("/fs/read", params={"path": "/in/f.txt"}).content == b"ok"


def test_symlinks_cannot_escape(initd, root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    os.symlink(str(outside), root / "abs-link")  # absolute symlink
    os.symlink(os.path.relpath(outside, root), root / "rel-out")  # relative, but pointing outside
    (root / "sub").mkdir(exist_ok=True)
    os.symlink("sub", root / "sub-link")  # relative, inside: allowed
    for link in ("/abs-link", "/rel-out"):
        code(initd.get("/fs/read", params={"path": f"{link}/secret"}), 400, "INVALID_ARGUMENT")
        code(initd.get("/fs/ls", params={"path": link}), 400, "INVALID_ARGUMENT")
        code(initd.get("/fs/stat", params={"path": f"{link}/secret"}), 400, "INVALID_ARGUMENT")
        code(upload(initd, f"{link}/planted", b"x"), 400, "INVALID_ARGUMENT")
        code(initd.post("/fs/mkdir", json={"dir": f"{link}/newdir"}), 400, "INVALID_ARGUMENT")
        code(initd.post("/fs/rm", params={"path": f"{link}/secret"}), 400, "INVALID_ARGUMENT")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    # the link itself can be removed, its target is untouched
    assert initd.post("/fs/rm", params={"path": "/abs-link"}).status_code == 200
    assert (outside / "secret").read_text() == "secret"
    # a symlink that stays inside works
    assert upload(initd, "/sub-link/via-link.txt", b"in").status_code == 200
    assert (root / "sub" / "via-link.txt").read_bytes() == b"in"


def test_initd_of_a_stopped_or_unknown_machine(sandbox):
    with sandbox.client() as api:
        m = api.post("/fleets/default/machines", json=machine_payload(["true"], skip_start=True)).json()
        with sandbox.initd_client(m["id"]) as initd:
            code(initd.get("/status"), 400, "FAILED_PRECONDITION")
            code(initd.get("/fs/ls", params={"path": "/"}), 400, "FAILED_PRECONDITION")
        api.delete(f"/fleets/default/machines/{m['id']}")
    with sandbox.initd_client("00000000000000000000000000") as initd:
        code(initd.get("/status"), 404, "NOT_FOUND")
