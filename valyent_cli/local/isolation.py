"""One root per machine for the process driver: what the server needs to launch, enter and see into a machine.

A machine launched through `machine_init.py` (beside this file; read its docstring) lives in its own user, mount
and PID namespaces with its directory as `/`. `exec` joins those namespaces with util-linux `nsenter`; `fs` maps a
machine path onto the host through the same mount table the launcher used (system directories read-only, volumes).

`probe()` says once, at server start, whether this kernel allows it; when it does not (no unprivileged user
namespaces, no /proc to mount, not Linux), machines run as before: plain processes in their directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MACHINE_INIT = str(Path(__file__).with_name("machine_init.py"))
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")
MACHINE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def system_mounts() -> list[tuple[str, str, bool]]:
    """(host source, machine path, read-only): the host's system directories, and the sandbox's own Python
    when it lives elsewhere (pyenv, a venv and its base), so that `python3` works inside a machine."""
    mounts = [(d, d, True) for d in SYSTEM_DIRS if os.path.isdir(d)]
    # the Python installation, and the virtual environment the sandbox runs from (a venv's `bin/python3` is a
    # link into the installation: a machine given the sandbox's interpreter by its path needs both)
    for prefix in dict.fromkeys([os.path.realpath(sys.base_prefix), os.path.abspath(sys.prefix)]):
        if not any(prefix == d or prefix.startswith(os.path.realpath(d) + "/") for d, _, _ in mounts):
            mounts.append((prefix, prefix, True))
    return mounts


def machine_path_env() -> str:
    """PATH inside an isolated machine: the standard one, then the sandbox's Python (when not under /usr)."""
    bindir = os.path.dirname(os.path.realpath(sys.executable))
    parts = MACHINE_PATH.split(":")
    return ":".join(parts if bindir in parts else [*parts, bindir])


def launcher_argv(spec: dict) -> list[str]:
    return [os.path.realpath(sys.executable), "-I", "-S", MACHINE_INIT, json.dumps(spec)]


def nsenter() -> str | None:
    return shutil.which("nsenter")


def exec_argv(init_pid: int, cmd: list[str]) -> list[str]:
    # --preserve-credentials: our own uid is root inside; without it nsenter calls setgroups, which a user
    # namespace made by an unprivileged user refuses
    # setpriv inside: without CAP_SYS_ADMIN it cannot undo the machine's read-only mounts (as its workload)
    # unshare --pid --kill-child: the exec is PID 1 of a PID namespace of its own (inside the machine's), so when
    # it ends (its timeout kills its process group) the kernel ends everything it started, `setsid` children too
    inner = [setpriv() or "setpriv", "--bounding-set=-sys_admin", "--", *cmd]
    if unshare() is not None:
        inner = [unshare(), "--pid", "--kill-child", "--", *inner]
    return [nsenter() or "nsenter", f"--target={init_pid}", "--user", "--mount", "--pid", "--root", "--wd",
            "--preserve-credentials", "--", *inner]


def unshare() -> str | None:
    """util-linux unshare, when it lives where a machine sees it too (a system directory)."""
    path = shutil.which("unshare", path=MACHINE_PATH)
    return path if path and any(path.startswith(d + "/") for d in SYSTEM_DIRS) else None


def setpriv() -> str | None:
    """util-linux setpriv, when it lives where a machine sees it too (a system directory)."""
    path = shutil.which("setpriv", path=MACHINE_PATH)
    return path if path and any(path.startswith(d + "/") for d in SYSTEM_DIRS) else None


def probe(work_dir: Path) -> str | None:
    """None when isolated machines work here, else why not (one line)."""
    if not sys.platform.startswith("linux"):
        return "machine isolation needs Linux namespaces"
    if os.environ.get("VALYENT_LOCAL_ISOLATION", "").lower() in ("0", "off", "no", "none"):
        return "machine isolation is turned off (VALYENT_LOCAL_ISOLATION=off)"
    if nsenter() is None or setpriv() is None:
        return "util-linux nsenter and setpriv are not installed"
    true = shutil.which("true", path=MACHINE_PATH)
    if true is None:
        return "no `true` program to test namespaces with"
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="probe-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        spec = {"root": str(root), "state_dir": tmp, "mounts": system_mounts(), "argv": [true]}
        try:
            proc = subprocess.run(launcher_argv(spec), capture_output=True, text=True, timeout=20,
                                  env={"PATH": MACHINE_PATH}, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"cannot run the machine launcher: {exc}"
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            return (lines[-1] if lines else f"the namespace test exited with {proc.returncode}").removeprefix(
                "machine init: ")
    return None


@dataclass(frozen=True)
class Mount:
    path: str   # where the machine sees it
    host: Path  # where it is on the host
    read_only: bool


def view(root: Path, mounts: list[Mount], machine_path: str) -> tuple[Path, str, str, bool]:
    """(host directory standing for the machine path's mount, path inside it, the mount's machine path, read-only).

    A machine path under a mount (a volume, /usr) is served from the mount's host directory; any other from the
    machine's own directory."""
    parts: list[str] = []
    for p in machine_path.split("/"):
        if p == "..":
            if not parts:
                return root, machine_path, "/", False  # climbs above /: the fs layer refuses it
            parts.pop()
        elif p not in ("", "."):
            parts.append(p)
    norm = "/" + "/".join(parts)
    best: Mount | None = None
    for m in mounts:
        if norm == m.path or norm.startswith(m.path.rstrip("/") + "/"):
            if best is None or len(m.path) > len(best.path):
                best = m
    if best is None:
        return root, machine_path, "/", False
    rest = norm[len(best.path):] or "/"
    return best.host, rest, best.path, best.read_only


def resolve_executable(argv0: str, path_env: str, root: Path, mounts: list[Mount]) -> None:
    """Raise FileNotFoundError / PermissionError as execvp would inside the machine, looking through the mounts."""

    def host_of(machine_path: str) -> Path:
        base, rest, _, _ = view(root, mounts, machine_path)
        return base / rest.lstrip("/")

    def runnable(machine_path: str) -> bool | None:
        host = host_of(machine_path)
        if not host.exists():
            return None
        return host.is_file() and os.access(host, os.X_OK)

    if "/" in argv0:
        ok = runnable(argv0 if argv0.startswith("/") else "/" + argv0)
        if ok is None:
            raise FileNotFoundError(2, "No such file or directory", argv0)
        if not ok:
            raise PermissionError(13, "Permission denied", argv0)
        return
    for d in path_env.split(":"):
        if d and runnable(d.rstrip("/") + "/" + argv0):
            return
    raise FileNotFoundError(2, "executable file not found in $PATH", argv0)
