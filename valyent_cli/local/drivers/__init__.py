"""How the sandbox runs a machine: as local processes, or as a container of its image (podman or docker).

`choose(name)` turns `auto|process|podman|docker` (flag `--driver`, env `VALYENT_LOCAL_DRIVER`) into a driver
kind, `make(kind, engine, data_dir)` builds the driver. The supervisor (`local/supervisor.py`) owns the machine
lifecycle, events, restart policies and logs; a driver only prepares, spawns, signals, execs, exposes the root
and the ports of one machine, and cleans up (see `base.Driver`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

DRIVERS = ("auto", "process", "podman", "docker")
ENV = "VALYENT_LOCAL_DRIVER"


class DriverError(Exception):
    """A driver that was asked for cannot be used (its engine is missing or does not answer)."""


def requested(name: str | None) -> str:
    """The driver asked for: the flag, else VALYENT_LOCAL_DRIVER, else auto. Raises DriverError for a bad name."""
    value = (name or os.environ.get(ENV) or "auto").strip().lower()
    if value not in DRIVERS:
        raise DriverError(f"unknown driver {value!r}: use one of {', '.join(DRIVERS)}")
    return value


def requested_is_bad(name: str | None) -> bool:
    """True when `name` (or the environment) names no driver at all: bad usage, not a missing engine."""
    try:
        requested(name)
    except DriverError:
        return True
    return False


def _answers(args: list[str]) -> bool:
    try:
        return subprocess.run(args, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _docker_answers(path: str) -> bool:
    return _answers([path, "version", "--format", "{{.Server.Version}}"])


def choose(name: str | None) -> tuple[str, str | None]:
    """(kind, engine executable). auto: podman if it answers, else docker if its daemon answers, else process."""
    want = requested(name)
    if want == "process":
        return "process", None
    if want in ("auto", "podman"):
        podman = shutil.which("podman")
        # auto takes podman only when it answers (`podman info`: its storage and runtime are set up)
        if podman and (want == "podman" or _answers([podman, "info", "--format", "{{.Host.OCIRuntime.Name}}"])):
            return "podman", podman
        if want == "podman":
            raise DriverError("the podman driver needs podman, which is not installed (or not on PATH)")
    docker = shutil.which("docker")
    if want == "docker":
        if not docker:
            raise DriverError("the docker driver needs the docker CLI, which is not installed (or not on PATH)")
        if not _docker_answers(docker):
            raise DriverError("the docker daemon does not answer (`docker version` fails): start it, or use "
                              "--driver podman or --driver process")
        return "docker", docker
    if docker and _docker_answers(docker):
        return "docker", docker
    return "process", None


def make(kind: str, engine: str | None, data_dir: Path, isolation_problem: str | None = "not checked"):
    """The driver; `isolation_problem` (process driver): what `isolation.probe()` said, None when machines can
    have their own root."""
    if kind == "process":
        from valyent_cli.local.drivers.process import ProcessDriver

        return ProcessDriver(data_dir, isolation_problem)
    from valyent_cli.local.drivers.container import ContainerDriver

    return ContainerDriver(kind, engine or kind, data_dir)


def kill_leftover_containers(data_dir: Path, remove: bool = False) -> int:
    """Kill the running containers of this sandbox (by label) with whichever engine is installed; for `local stop`
    after the server died without stopping them. ``remove``: remove every container of this sandbox, stopped ones
    too (`local stop` leaves nothing behind). Returns how many were killed or removed."""
    from valyent_cli.local import procs
    from valyent_cli.local.drivers.container import SANDBOX_LABEL

    done = 0
    for engine in filter(None, (shutil.which("podman"), shutil.which("docker"))):
        try:
            ps = subprocess.run([engine, "ps", "--quiet", *(["--all"] if remove else []), "--filter",
                                 f"label={SANDBOX_LABEL}={procs.sandbox_id(data_dir)}"],
                                capture_output=True, text=True, timeout=20)
            ids = ps.stdout.split() if ps.returncode == 0 else []
            if ids:
                subprocess.run([engine, *(["rm", "--force"] if remove else ["kill"]), *ids], capture_output=True,
                               timeout=60)
                done += len(ids)
        except (OSError, subprocess.SubprocessError):
            continue
    return done
