"""Process helpers: markers that identify our machine processes, and finding or killing them.

Every machine process (and every process it starts, since the environment is inherited) carries
``VALYENT_MACHINE_ID=<id>`` and ``VALYENT_SANDBOX_ID=<hash of the data dir>``. On Linux that is how a restarted
server, or a test, finds processes left over by a previous server even when their process group changed; a pid
recorded in the database alone could have been reused by an unrelated process.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import signal
import sys
from pathlib import Path

MACHINE_MARKER = "VALYENT_MACHINE_ID"
SANDBOX_MARKER = "VALYENT_SANDBOX_ID"

_PR_SET_PDEATHSIG = 1


def sandbox_id(data_dir: Path) -> str:
    # fsencode: the same bytes as .encode() for a UTF-8 path, and any other path's own bytes (not an error)
    return hashlib.sha256(os.fsencode(Path(data_dir).resolve())).hexdigest()[:16]


def _make_pdeathsig():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        # The machine dies with the server even after `kill -9` of the server (the kernel sends SIGKILL when
        # the thread that forked it exits); what it started itself is cleaned up by the next server.
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return preexec


pdeathsig_preexec = _make_pdeathsig()


@functools.lru_cache(maxsize=1)
def _setpriv() -> str | None:
    if not sys.platform.startswith("linux"):
        return None
    path = shutil.which("setpriv")
    if not path:
        return None
    import subprocess

    try:
        out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "--pdeathsig" in out else None


def spawn_args(argv: list[str]) -> tuple[list[str], object]:
    """(argv, preexec_fn) to start a machine process that dies with the server.

    util-linux's `setpriv --pdeathsig KILL` sets the parent-death signal and execs the command, which lets
    Python use vfork (a preexec_fn forces a full fork of the server, and is unsafe with threads around)."""
    setpriv = _setpriv()
    if setpriv:
        return [setpriv, "--pdeathsig", "KILL", "--", *argv], None
    return list(argv), pdeathsig_preexec


def check_executable(argv0: str, path_env: str, cwd: str) -> str:
    """Resolve argv[0] as execvp would (PATH from the machine's env, relative paths from its directory), so that
    a missing or non-executable command is a start failure, not an exit of the wrapper. Returns the path."""
    if "/" in argv0:
        path = argv0 if os.path.isabs(argv0) else os.path.join(cwd, argv0)
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", argv0)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(13, "Permission denied", argv0)
        return path
    found = shutil.which(argv0, path=path_env)
    if found is None:
        raise FileNotFoundError(2, "executable file not found in $PATH", argv0)
    return found


def _environ(pid: int) -> dict[bytes, bytes] | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key] = value
    return env


#: (pid, start time) -> (sandbox id, machine id) of every machine process a scan found by its marker: a process that
#: is exiting has no environ left (the kernel lets go of its memory before its open files), yet still holds its
#: sockets for a moment; it is known by this, or by its parent, until it is gone
_SEEN: dict[tuple[int, bytes], tuple[bytes, str]] = {}


def _stat(pid: int) -> tuple[bytes, int, bytes] | None:
    """(state, ppid, start time) from /proc/PID/stat, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[-1].split()
        return fields[0], int(fields[1]), fields[19]
    except (OSError, ValueError, IndexError):
        return None


def find_machine_processes(data_dir: Path | None = None) -> list[tuple[int, str]]:
    """(pid, machine id) of live machine processes; of one sandbox when data_dir is given. Linux only.

    A process is a machine's by the marker in its environment; one that is exiting (its environment already gone)
    by what an earlier scan saw of it (same pid and start time), or else by its parent's."""
    if not os.path.isdir("/proc"):
        return []
    wanted = sandbox_id(data_dir).encode() if data_dir is not None else None
    me = os.getpid()
    owner: dict[int, tuple[bytes, str]] = {}  # pid -> (sandbox id, machine id)
    unknown: dict[int, tuple[int, bytes]] = {}  # pid -> (ppid, start time): no environ to read, not a zombie
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        env = _environ(pid)
        if env:
            if MACHINE_MARKER.encode() not in env:
                continue  # its environment says it is no machine's
        stat = _stat(pid)
        if stat is None or stat[0] == b"Z":  # a zombie holds nothing
            continue
        if env:
            owner[pid] = (env.get(SANDBOX_MARKER.encode(), b""), env[MACHINE_MARKER.encode()].decode(errors="replace"))
            _SEEN[(pid, stat[2])] = owner[pid]
        elif (pid, stat[2]) in _SEEN:
            owner[pid] = _SEEN[(pid, stat[2])]
        else:
            unknown[pid] = (stat[1], stat[2])
    for pid in unknown:  # an exiting child of a machine's process (a kernel thread's parent is 2, never a machine's)
        parent, hops = unknown[pid][0], 0
        while parent in unknown and parent not in owner and hops < 32:
            parent, hops = unknown[parent][0], hops + 1
        if parent in owner:
            owner[pid] = owner[parent]
    if len(_SEEN) > 4096:  # forget the processes that are gone
        live = {(pid, stat[2]) for pid in owner if (stat := _stat(pid)) is not None}
        for key in [k for k in list(_SEEN) if k not in live]:  # a copy: scans run in worker threads too
            _SEEN.pop(key, None)
    return [(pid, mid) for pid, (sid, mid) in owner.items() if wanted is None or sid == wanted]


#: local addresses (as /proc/net/tcp{,6} spell them) whose listeners take a connection to 127.0.0.1
_LOOPBACK_LISTEN = {"0100007F", "00000000", "00000000000000000000000000000000",
                    "0000000000000000FFFF00000100007F"}


def loopback_listeners(port: int) -> set[int]:
    """The socket inodes listening on `port` where a connection to 127.0.0.1 can land (this network namespace's
    /proc/net/tcp and tcp6). Linux only: empty elsewhere."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh, None)
                for line in fh:
                    fields = line.split()
                    if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                        continue
                    addr, _, hexport = fields[1].partition(":")
                    if int(hexport, 16) == port and addr in _LOOPBACK_LISTEN:
                        found.add(int(fields[9]))
        except (OSError, ValueError):
            continue
    return found


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets a process holds open."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def machine_owns_port(data_dir: Path, machine_id: str, port: int, peers: frozenset[str] = frozenset()) -> bool:
    """Whether the machine listens on 127.0.0.1:`port` and every listener there is held by a process of it or of
    one of ``peers`` (its fleet's other machines, sharing the port with SO_REUSEPORT), found by their marker: a
    gateway of the process driver reaches nothing else on loopback."""
    listeners = loopback_listeners(port)
    if not listeners:
        return False
    own: set[int] = set()
    fleet: set[int] = set()
    for pid, mid in find_machine_processes(data_dir):
        if mid == machine_id:
            own |= socket_inodes(pid)
        elif mid in peers:
            fleet |= socket_inodes(pid)
    strangers = listeners - own - fleet
    if strangers:  # read before the processes: one that ended meanwhile may have let go of its listener since
        strangers &= loopback_listeners(port)
    return bool(listeners & own) and not strangers


def kill_machine_processes(data_dir: Path, machine_id: str | None = None) -> int:
    """SIGKILL every live process of this sandbox (or of one machine). Returns how many were signalled."""
    count = 0
    for pid, mid in find_machine_processes(data_dir):
        if machine_id is not None and mid != machine_id:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            count += 1
        except OSError:
            pass
    return count


#: in an exec's environment (container driver; process driver without namespaces): how its processes are found
EXEC_MARKER = "VALYENT_EXEC_ID"


def kill_exec(mark: str, rounds: int = 3) -> int:
    """SIGKILL an exec's processes: those whose environment carries EXEC_MARKER=mark, and every descendant of
    theirs (a child started with `env -i` has no marker; one started with `setsid` has left the process group).
    A few rounds, for what forked meanwhile. Returns how many were signalled. Linux only."""
    want = f"{EXEC_MARKER}={mark}".encode()
    killed = 0
    for _ in range(rounds):
        parent: dict[int, int] = {}
        marked: list[int] = []
        for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
            stat = _stat(int(name)) if name.isdigit() else None
            if stat is None:
                continue
            parent[int(name)] = stat[1]
            try:
                with open(f"/proc/{name}/environ", "rb") as fh:
                    if want in fh.read().split(b"\0"):
                        marked.append(int(name))
            except OSError:
                continue
        children: dict[int, list[int]] = {}
        for pid, ppid in parent.items():
            children.setdefault(ppid, []).append(pid)
        doomed, todo = set(), list(marked)
        while todo:
            pid = todo.pop()
            if pid not in doomed:
                doomed.add(pid)
                todo.extend(children.get(pid, ()))
        doomed.discard(os.getpid())
        if not doomed:
            break
        # all frozen first, then killed: a shell whose child dies first cannot run its next command meanwhile
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in doomed:
                try:
                    os.kill(pid, sig)
                    killed += sig == signal.SIGKILL
                except OSError:
                    pass
    return killed


def killpg(pgid: int | None, sig: int) -> bool:
    if not pgid:
        return False
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def exit_code_of(returncode: int) -> int:
    """A shell-style exit code: a death by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode
