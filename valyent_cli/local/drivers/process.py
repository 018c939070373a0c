"""Machines as local processes (the driver used when no container engine is there, or with --driver process).

Every machine process runs `entrypoint + cmd` without a shell, in its own session (so a signal reaches everything
it started), in `<data_dir>/machines/<id>/root`, and dies with the server (PR_SET_PDEATHSIG). Where namespaces are
available (`isolation.probe()` found no problem) that directory is the machine's own root (`local/isolation.py`):
user, mount and PID namespaces, the host's system directories read-only, volumes bind-mounted; exec joins them
with nsenter. The image is not run: a machine without a command idles. exec: a missing executable exits 127, one
that cannot be run 126, a timeout kills it and exits 124.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from valyent_cli.local import isolation, paths, procs
from valyent_cli.local.drivers.base import (
    Driver, Instance, LineSink, PipedInstance, Pipes, PrepareFailed, StartFailed, finish_exec,
)
from valyent_cli.local.problems import Problem, precondition

IDLE_SECONDS = "2147483647"
#: seconds spawn waits for init to say the workload starts (init.pid)
READY_WAIT = 10.0


class ProcessInstance(PipedInstance):
    def __init__(self, driver: ProcessDriver, machine_id: str, transport, proto: Pipes):
        self.driver = driver
        self.machine_id = machine_id
        super().__init__(driver.loop, transport, proto)

    async def _wait(self) -> int:
        returncode = await self.proto.exited
        procs.killpg(self.pid, signal.SIGKILL)  # what it left behind in its group: a stopped VM runs nothing
        if not self.driver.isolated:  # isolated: the kernel ended its PID namespace; else find setsid children too
            procs.kill_machine_processes(self.driver.data_dir, self.machine_id)
        if self.driver.instances.get(self.machine_id) is self:
            del self.driver.instances[self.machine_id]
        await self._collect(1.0)
        return procs.exit_code_of(returncode)

    def signal(self, sig: signal.Signals) -> None:
        procs.killpg(self.pid, sig)


class ProcessDriver(Driver):
    name = "process"

    def __init__(self, data_dir: Path, isolation_problem: str | None = "not checked"):
        self.data_dir = data_dir
        self.loop = asyncio.get_running_loop()
        self.sandbox_id = procs.sandbox_id(data_dir)
        self.sleep = shutil.which("sleep")
        # None: every machine gets its own root (namespaces); else why not, and machines are plain processes
        self.isolation_problem = isolation_problem
        self.isolated = isolation_problem is None
        self.isolation = "namespaces" if self.isolated else "none"
        self.instances: dict[str, ProcessInstance] = {}

    def root(self, machine_id: str) -> Path:
        return self.data_dir / "machines" / machine_id / "root"

    def volume_dir(self, namespace: str, name: str) -> Path:
        return paths.volume_dir(self.data_dir, namespace, name)

    def mounts(self, namespace: str, config: dict) -> list[isolation.Mount]:
        """What is mounted in the machine besides its own directory: the host's system directories (isolated
        machines only) and its volumes."""
        mounts = []
        if self.isolated:
            mounts = [isolation.Mount(path, Path(src), ro) for src, path, ro in isolation.system_mounts()]
        for vol in (config.get("workload") or {}).get("volumes") or []:
            mounts.append(isolation.Mount(vol["path"], self.volume_dir(namespace, vol["name"]), False))
        return mounts

    async def fs_mounts(self, namespace: str, config: dict) -> list[isolation.Mount]:
        return self.mounts(namespace, config)

    def check_user(self, config: dict) -> str | None:
        user = ((config.get("workload") or {}).get("init") or {}).get("user")
        return user_problem(user, self.isolated)

    def describe(self) -> dict:
        return {"driver": self.name, "isolation": self.isolation}

    def create_notice(self, config: dict) -> str | None:
        return (f"the local sandbox runs with the process driver: image {config.get('image')!r} is not run, the "
                "machine's command runs as a process on this computer (start the sandbox with --driver podman "
                "or docker to run images)")

    def env(self, machine_id: str, user_env: dict[str, str]) -> dict[str, str]:
        root = self.root(machine_id)
        env = {
            "PATH": isolation.machine_path_env() if self.isolated else (
                os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin"),
            "HOME": "/" if self.isolated else str(root),
            "LANG": os.environ.get("LANG") or "C.UTF-8",
        }
        env.update(user_env)
        env[procs.MACHINE_MARKER] = machine_id
        env[procs.SANDBOX_MARKER] = self.sandbox_id
        return env

    async def prepare(self, machine_id, config, env, ports, progress, namespace="default") -> None:
        try:
            self.root(machine_id).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PrepareFailed(str(exc)) from None

    async def spawn(self, machine_id: str, config: dict, env: dict[str, str], on_lines: LineSink,
                    namespace: str = "default") -> Instance:
        init = (config.get("workload") or {}).get("init") or {}
        argv = list(init.get("entrypoint") or []) + list(init.get("cmd") or [])
        piped = 2
        if not argv:
            on_lines(1, [f"image {config.get('image')}: its own entrypoint is not run by the process driver; "
                         "this machine idles".encode()])
            argv = [self.sleep or "sleep", IDLE_SECONDS]
            piped = 0
        root = self.root(machine_id)
        proto = Pipes(self.loop, piped, on_lines)
        out = subprocess.PIPE if piped else subprocess.DEVNULL
        try:
            env = self.env(machine_id, env)
            if not root.is_dir():
                root.mkdir(parents=True, exist_ok=True)
            args, cwd = self._launch(machine_id, namespace, config, argv, env)
            args, preexec = procs.spawn_args(args)
            transport, _ = await self.loop.subprocess_exec(
                lambda: proto, *args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=cwd,
                env=env, start_new_session=True, preexec_fn=preexec,
            )
        except (OSError, subprocess.SubprocessError, ValueError, Problem) as exc:
            if isinstance(exc, Problem):
                error = exc.detail
            elif isinstance(exc, FileNotFoundError):
                error = f"exec: {argv[0]!r}: executable file not found in $PATH"
            elif isinstance(exc, PermissionError):
                error = f"exec: {argv[0]!r}: permission denied"
            else:
                error = f"exec: {argv[0]!r}: {exc}"
            raise StartFailed(error) from None
        instance = self.instances[machine_id] = ProcessInstance(self, machine_id, transport, proto)
        if self.isolated:
            # Started means its command runs (as a VM's init on Ravel): init writes init.pid just before it runs the
            # workload. So a command that fails at once does so right after `machine.started`, where `create`
            # looks, not while the launcher still starts.
            ready = root.parent / "init.pid"
            deadline = self.loop.time() + READY_WAIT
            while not ready.exists() and not proto.exited.done() and self.loop.time() < deadline:
                await asyncio.sleep(0.005)
        return instance

    def _launch(self, machine_id: str, namespace: str, config: dict, argv: list[str],
                env: dict) -> tuple[list[str], str]:
        """(argv, cwd) that start the workload: through the namespace launcher, or as a plain process."""
        root = self.root(machine_id)
        mounts = self.mounts(namespace, config)
        for m in mounts:
            if not m.read_only:
                m.host.mkdir(parents=True, exist_ok=True)  # a volume is created on first use
        user = ((config.get("workload") or {}).get("init") or {}).get("user")
        if self.isolated:
            state_dir = root.parent
            (state_dir / "init.pid").unlink(missing_ok=True)
            isolation.resolve_executable(argv[0], env["PATH"], root, mounts)
            spec = {"root": str(root), "state_dir": str(state_dir), "argv": argv, "user": user, "cwd": "/",
                    "mounts": [(str(m.host), m.path, m.read_only) for m in mounts]}
            return isolation.launcher_argv(spec), str(state_dir)
        for m in mounts:  # without a mount namespace a volume is a symlink in the machine's directory
            link = root / m.path.strip("/")
            if not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                if link.is_dir() and not any(link.iterdir()):
                    link.rmdir()
                link.symlink_to(m.host)
        procs.check_executable(argv[0], env["PATH"], str(root))
        return as_user(user) + argv, str(root)

    async def _init_pid(self, machine_id: str) -> int:
        """The host pid of an isolated machine's init, once it has set the machine up (it writes init.pid then)."""
        path = self.root(machine_id).parent / "init.pid"
        deadline = time.monotonic() + 10
        while True:
            try:
                return int(path.read_text().strip())
            except (OSError, ValueError):
                pass
            if machine_id not in self.instances or time.monotonic() > deadline:
                raise precondition("machine is not running (its init did not come up)")
            await asyncio.sleep(0.02)

    async def exec(self, machine_id: str, config: dict, env: dict[str, str], cmd: list[str], timeout_ms: int,
                   namespace: str = "default") -> dict:
        proto = Pipes(self.loop, 2)
        env = self.env(machine_id, env)
        mark = env[procs.EXEC_MARKER] = secrets.token_hex(8)
        root = str(self.root(machine_id))
        try:
            if self.isolated:
                isolation.resolve_executable(cmd[0], env["PATH"], Path(root), self.mounts(namespace, config))
                init_pid = await self._init_pid(machine_id)
                args, preexec = procs.spawn_args(isolation.exec_argv(init_pid, cmd))
                cwd = None
            else:
                procs.check_executable(cmd[0], env["PATH"], root)
                args, preexec = procs.spawn_args(cmd)
                cwd = root
            transport, _ = await self.loop.subprocess_exec(
                lambda: proto, *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=cwd, env=env, start_new_session=True, preexec_fn=preexec,
            )
        except FileNotFoundError:
            return {"stdout": "", "stderr": f"{cmd[0]}: command not found\n", "exit_code": 127}
        except PermissionError:
            return {"stdout": "", "stderr": f"{cmd[0]}: permission denied\n", "exit_code": 126}
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            return {"stdout": "", "stderr": f"{cmd[0]}: {exc}\n", "exit_code": 126}
        pgid = transport.get_pid()

        def kill() -> None:
            procs.killpg(pgid, signal.SIGKILL)  # isolated: the exec's PID 1 (isolation.exec_argv), so all it started
            if not self.isolated:  # no PID namespace: what left the group, found by its marker or its parent
                procs.kill_exec(mark)

        # after the command exits, what it left behind in its group goes too
        return await finish_exec(proto, transport, timeout_ms, kill, after_exit=kill)

    async def fs_root(self, machine_id: str) -> Path:
        return self.root(machine_id)

    async def endpoint(self, machine_id: str, port: int,
                       peers: frozenset[str] = frozenset()) -> tuple[str, int] | None:
        """127.0.0.1:port, only when the machine itself listens there and every other listener of that port is a
        machine of its fleet (``peers``): machines share the host's network, and a gateway must not become a way to
        any loopback port (another namespace's machine, a sandbox's API)."""
        if await asyncio.to_thread(procs.machine_owns_port, self.data_dir, machine_id, port, peers):
            return ("127.0.0.1", port)
        return None

    async def remove(self, machine_id: str) -> None:
        path = self.data_dir / "machines" / machine_id
        if path.exists():
            await asyncio.to_thread(shutil.rmtree, path, True)

    async def reconcile(self, keep: set[str]) -> None:
        procs.kill_machine_processes(self.data_dir)  # survivors of the previous server, found by their marker

    async def shutdown(self) -> None:
        procs.kill_machine_processes(self.data_dir)


def _is_root_user(user: str | None) -> bool:
    return not user or user in ("root", "0", "0:0")


def user_problem(user: str | None, isolated: bool) -> str | None:
    """Why `init.user` cannot be honoured by this sandbox, or None."""
    if not user:
        return None
    if _is_root_user(user) and (isolated or os.geteuid() == 0):
        return None
    import pwd

    name = user.partition(":")[0]
    if os.geteuid() == 0:
        if name.isdigit():
            return None
        try:
            pwd.getpwnam(name)
            return None
        except KeyError:
            return f"init.user {user!r}: no such user on this machine (the sandbox's machines share its /etc)"
    me = pwd.getpwuid(os.geteuid()).pw_name
    if not isolated and name in (me, str(os.geteuid())):
        return None
    who = "root (in their own user namespace)" if isolated else f"{me}, the user running it"
    return (f"init.user {user!r} cannot be honoured: this sandbox runs as the unprivileged user {me}, so its machines "
            f"run as {who}; leave init.user out or set it to {'root' if isolated else me}")


def as_user(user: str | None) -> list[str]:
    """The prefix that runs a plain (not isolated) process as init.user, when the sandbox is root."""
    if _is_root_user(user) or os.geteuid() != 0:
        return []
    import pwd

    name, _, group = user.partition(":")
    setpriv = shutil.which("setpriv") or "setpriv"
    uid = name if name.isdigit() else str(pwd.getpwnam(name).pw_uid)
    gid = group or (str(pwd.getpwnam(name).pw_gid) if not name.isdigit() else name)
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
