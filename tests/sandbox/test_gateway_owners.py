"""Whose listener is it: the process driver's gateway reaches a port only when every listener there belongs to a
machine of the gateway's fleet (procs.machine_owns_port). A machine's process that is being killed loses its
environment (where its marker is) before it lets go of its sockets: for that moment it must still count as its
machine's, or a blue-green deploy's gateway refuses the new machines while the old ones exit (a lost request in
tests/cli/test_deploy.py). A process that was never a machine's must not count, exiting or not.

That moment lasts a few milliseconds (tens with a big heap, the memory being freed first), too short to catch
reliably on a busy machine; here a live process takes on its look instead: it overwrites its own environment area
with zeros (the range /proc/PID/stat gives, which /proc/PID/environ shows), so that /proc says nothing of whose it
is, while it keeps listening."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support.env import free_port
from valyent_cli.local import procs

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="Linux /proc")

# A listener on PORT shared with SO_REUSEPORT. Commands on stdin: "wipe" zeroes its environment area; "fork" starts a
# child with a listener of its own on the same port (as a worker of a pre-forking server may open), which zeroes its
# environment and prints its pid.
LISTENER = """
import ctypes, os, socket, sys, time

def listen():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(16)
    return s

def wipe():
    with open("/proc/self/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[-1].split()
    start, end = int(fields[47]), int(fields[48])  # env_start, env_end: fields 50 and 51 of proc(5)
    ctypes.memset(start, 0, end - start)

s = listen()
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "wipe":
        wipe()
        print("wiped", flush=True)
    elif line.strip() == "fork":
        child = os.fork()
        if child == 0:
            s.close()
            s = listen()
            wipe()
            print(os.getpid(), flush=True)
            time.sleep(600)
            os._exit(0)
time.sleep(600)
"""


def _listener(port: int, env: dict[str, str]) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", LISTENER, str(port)], env={**os.environ, **env},
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    assert p.stdout.readline().strip() == b"ready"
    return p


def _say(p: subprocess.Popen, command: str) -> str:
    p.stdin.write(command.encode() + b"\n")
    p.stdin.flush()
    return p.stdout.readline().decode().strip()


def _marks(data_dir: Path, machine_id: str) -> dict[str, str]:
    return {procs.MACHINE_MARKER: machine_id, procs.SANDBOX_MARKER: procs.sandbox_id(data_dir)}


def _end(*ps: subprocess.Popen) -> None:
    for p in ps:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.fixture()
def port_of_new(tmp_path):
    """A sandbox data dir, a free port, and machine `new` of the fleet listening there: (data dir, port, check),
    check() being whether the gateway may send `new` connections to it with machine `old` as its peer."""
    data = tmp_path / "sbx"
    data.mkdir()
    port = free_port()
    new = _listener(port, _marks(data, "new"))
    yield data, port, lambda: procs.machine_owns_port(data, "new", port, frozenset({"old"}))
    _end(new)


def test_a_machine_process_that_lost_its_environment_still_counts_as_its_machines(port_of_new):
    """The old machine's process, seen by an earlier scan, with its environment gone (the old machines of a
    blue-green deploy being killed)."""
    data, port, check = port_of_new
    old = _listener(port, _marks(data, "old"))
    try:
        assert check()  # a scan sees the old one at work
        assert _say(old, "wipe") == "wiped"
        assert not procs._environ(old.pid) or not any(procs._environ(old.pid))
        assert check(), "the old machine's process counted as a stranger once /proc showed no environment"
    finally:
        _end(old)


def test_a_new_child_without_environment_counts_as_its_parents_machine(port_of_new):
    """A child the old machine's process forked after the last scan, with a listener of its own, with no
    environment to read: known by its parent."""
    data, port, check = port_of_new
    old = _listener(port, _marks(data, "old"))
    try:
        assert check()
        child = int(_say(old, "fork"))
        assert procs.socket_inodes(child) & procs.loopback_listeners(port)  # its own listener
        assert check(), "the machine's new child counted as a stranger"
    finally:
        _end(old)


def test_a_stranger_without_environment_never_counts_as_a_machines(port_of_new):
    data, port, check = port_of_new
    stranger = _listener(port, {})  # the same port, no marker: never a machine's
    try:
        assert not check()
        assert _say(stranger, "wipe") == "wiped"
        assert not check(), "a process that was no machine's counted as the fleet's once it showed no environment"
        child = int(_say(stranger, "fork"))  # nor does its child, by its parent
        assert procs.socket_inodes(child) & procs.loopback_listeners(port)
        assert not check()
    finally:
        _end(stranger)
