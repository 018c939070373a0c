"""Issue 27, item 3: the fs API against a machine that swaps a directory and a symlink while a call runs.

The machine (here the test, in the machine's own directory, as the machine's processes would) exchanges a real
directory `race` and a symlink `race-link` that points at a host directory, with `renameat2(RENAME_EXCHANGE)`, as
fast as it can, while `fs read`, `rm`, `write`, `mkdir` and `ls` name `/race/...`. A check of the path followed by
a second lookup by name (the old `resolve` then `FileResponse` / `unlink` / `os.replace`) lands in the host
directory some of the time; a lookup done once, relative to directory fds, with `O_NOFOLLOW` on every component,
never does: each call either works inside the machine or is refused.
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import threading
from pathlib import Path

import pytest

from support.util import machine_payload, wait_until

RENAME_EXCHANGE = 2
AT_FDCWD = -100
ROUNDS = {"process": 150, "podman": 25}  # podman answers an fs call in a subprocess's time (`podman inspect`)


def _renameat2():
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        pytest.skip("libc has no renameat2")
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


class Swapper:
    """Exchanges two names in a directory until stopped."""

    def __init__(self, directory, a: str, b: str):
        self.fn = _renameat2()
        self.a = os.fsencode(os.path.join(directory, a))
        self.b = os.fsencode(os.path.join(directory, b))
        self.stop = threading.Event()
        self.swaps = 0
        if self.fn(AT_FDCWD, self.a, AT_FDCWD, self.b, RENAME_EXCHANGE) != 0:
            err = ctypes.get_errno()
            if err in (errno.ENOSYS, errno.EINVAL):
                pytest.skip("the filesystem does not support RENAME_EXCHANGE")
            raise OSError(err, os.strerror(err))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            self.fn(AT_FDCWD, self.a, AT_FDCWD, self.b, RENAME_EXCHANGE)
            self.swaps += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _machine_root(sb, machine: dict) -> Path:
    if sb.driver == "process":
        return sb.data_dir / "machines" / machine["id"] / "root"
    found = subprocess.run(["podman", "inspect", f"valyent-{machine['id']}", "--format",
                            "{{.GraphDriver.Data.MergedDir}}"], capture_output=True, text=True)
    return Path(found.stdout.strip())


@pytest.fixture(params=["process", "podman"])
def racing(request, tmp_path):
    """(initd client, the machine's real `race` directory as an fd, the host directory the link points at, rounds), on
    the process driver and on podman (the container's merged root)."""
    if request.param == "process":
        sb, image = request.getfixturevalue("sandbox"), "alpine"
    else:
        sb = request.getfixturevalue("podman_sandbox")
        image = request.getfixturevalue("podman_images")["base"]
    with sb.client() as api:
        m = api.post("/fleets/default/machines", json=machine_payload(["sleep", "600"], image=image)).json()
        try:
            wait_until(lambda: api.get(f"/fleets/default/machines/{m['id']}").json()["state"] == "running",
                       timeout=120, message="the machine to run")
            root = _machine_root(sb, m)
            host = tmp_path / "host"
            host.mkdir()
            for name in ("secret", "victim"):
                (host / name).write_text("HOST FILE")
            (root / "race").mkdir()
            (root / "race" / "secret").write_text("machine file")
            os.symlink(str(host), root / "race-link")
            race_fd = os.open(root / "race", os.O_RDONLY | os.O_DIRECTORY)
            try:
                with sb.initd_client(m["id"]) as initd, Swapper(root, "race", "race-link"):
                    yield initd, race_fd, host, ROUNDS[request.param]
            finally:
                os.close(race_fd)
        finally:
            api.delete(f"/fleets/default/machines/{m['id']}", params={"force": "true"})


def _untouched(host):
    assert sorted(p.name for p in host.iterdir()) == ["secret", "victim"], "a host file was created or deleted"
    for p in host.iterdir():
        assert p.read_text() == "HOST FILE", f"host file {p.name} was written"


def test_read_through_a_swapped_symlink_never_reads_a_host_file(racing):
    initd, _, host, rounds = racing
    for _ in range(rounds):
        r = initd.get("/fs/read", params={"path": "/race/secret"})
        assert r.status_code in (200, 400, 404), r.text
        assert b"HOST FILE" not in r.content, "a host file was read through the machine's symlink"
    _untouched(host)


def test_rm_through_a_swapped_symlink_never_deletes_a_host_file(racing):
    initd, race_fd, host, rounds = racing
    for _ in range(rounds):
        os.close(os.open("victim", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=race_fd))
        r = initd.post("/fs/rm", params={"path": "/race/victim"})
        assert r.status_code in (200, 400, 404), r.text
        assert (host / "victim").exists(), "a host file was deleted through the machine's symlink"
    _untouched(host)


def test_write_and_mkdir_through_a_swapped_symlink_never_touch_the_host(racing):
    initd, _, host, rounds = racing
    for i in range(rounds):
        r = initd.post("/fs/write", data={"path": "/race/secret"}, files={"file": ("f", b"planted")})
        assert r.status_code in (200, 400, 404), r.text
        r = initd.post("/fs/mkdir", json={"dir": f"/race/d{i}"})
        assert r.status_code in (200, 400, 404), r.text
        _untouched(host)


def test_ls_through_a_swapped_symlink_never_lists_the_host(racing):
    initd, _, host, rounds = racing
    for _ in range(rounds):
        r = initd.get("/fs/ls", params={"path": "/race"})
        assert r.status_code in (200, 400, 404), r.text
        if r.status_code == 200:
            assert "victim" not in [e["name"] for e in r.json()], "a host directory was listed"
    _untouched(host)
