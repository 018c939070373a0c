"""Machines as local processes: their lifecycle, events, restart policies, logs and exec.

Every machine process runs `entrypoint + cmd` without a shell, in its own session (so a signal reaches
everything it started), with `<data_dir>/machines/<id>/root` as its root (isolated: `isolation.py`) or, where
namespaces are unavailable, as its working directory, and dies with the server (PR_SET_PDEATHSIG). How a machine
is launched and entered is in `_launch`, `_exec_argv` and `mounts`; health checks, secrets and volumes sit above.
All of this runs on the server's event loop; the database is touched only from there.

Choices the contract leaves open, documented in the CLI's docs:
- exit codes are shell-style: a death by signal N is recorded as 128 + N (SIGTERM: 143, SIGKILL: 137);
- when the main process of a machine exits, whatever it left in its process group is killed (a VM stops);
- restarts back off: 0.1 s, doubling while the process keeps dying within 10 s of its start, at most 5 s;
  `on-failure` without `max_retries` retries 3 times;
- auto_destroy destroys a machine whenever it exits and is not restarted, including after a user's stop;
- when the server stops (or dies), its machines are stopped and get an `exited` event; on the next start the
  restart policy is applied to that exit (`always` restarts, `on-failure` restarts, since the exit code is
  143 or 137, while retries remain; `never` stays stopped, and auto_destroy then applies);
- exec: a missing executable exits 127, one that cannot be run 126, a timeout kills it and exits 124.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from valyent_cli.local import isolation, procs
from valyent_cli.local.problems import Problem, precondition, signal_number
from valyent_cli.local.store import Store, now_rfc3339

ALIVE = ("starting", "running", "stopping")
DEFAULT_STOP_TIMEOUT = 5
DEFAULT_STOP_SIGNAL = "SIGTERM"
DEFAULT_MAX_RETRIES = 3
MAX_LINE = 64 * 1024
IDLE_SECONDS = "2147483647"


class ShuttingDown(Exception):
    pass


def workload(config: dict) -> dict:
    return config.get("workload") or {}


def restart_policy(config: dict) -> tuple[str, int]:
    w = workload(config)
    r = w.get("restart") or w.get("restart_policy") or {}
    policy = r.get("policy") or "never"
    retries = r.get("max_retries")
    return policy, DEFAULT_MAX_RETRIES if retries is None else retries


def auto_destroy(config: dict) -> bool:
    return bool(workload(config).get("auto_destroy") or config.get("auto_destroy"))


def stop_config(config: dict, override: dict | None = None) -> tuple[str, int]:
    sc = dict(config.get("stop_config") or {})
    for k, v in (override or {}).items():
        if v is not None:
            sc[k] = v
    timeout = sc.get("timeout")
    sig = sc.get("signal") or DEFAULT_STOP_SIGNAL
    name = signal.Signals(signal_number(sig)).name
    return name, DEFAULT_STOP_TIMEOUT if timeout is None else int(timeout)


class _Protocol(asyncio.SubprocessProtocol):
    """Receives a process's output and exit. `on_lines(source, [bytes])` gets whole lines as they come."""

    def __init__(self, loop: asyncio.AbstractEventLoop, piped: int, on_lines=None):
        self.on_lines = on_lines
        self.transport: asyncio.SubprocessTransport | None = None
        self.exited: asyncio.Future = loop.create_future()
        self.pipes_closed: asyncio.Future = loop.create_future()
        self.open_pipes = piped
        self.partial = {1: b"", 2: b""}
        self.chunks: dict[int, list[bytes]] = {1: [], 2: []}
        if not piped:
            self.pipes_closed.set_result(None)

    def connection_made(self, transport) -> None:
        self.transport = transport

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self.on_lines is None:
            self.chunks[fd].append(data)
            return
        buf = self.partial[fd] + data if self.partial[fd] else data
        lines = buf.split(b"\n")
        rest = lines.pop()
        while len(rest) > MAX_LINE:  # a line without end must not grow without bound
            lines.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self.partial[fd] = rest
        if lines:
            self.on_lines(fd, lines)

    def flush(self) -> None:
        for fd in (1, 2):
            if self.partial[fd] and self.on_lines is not None:
                self.on_lines(fd, [self.partial[fd]])
            self.partial[fd] = b""

    def pipe_connection_lost(self, fd: int, exc) -> None:
        if fd in (1, 2):
            if self.partial[fd] and self.on_lines is not None:
                self.on_lines(fd, [self.partial[fd]])
                self.partial[fd] = b""
            self.open_pipes -= 1
            if self.open_pipes <= 0 and not self.pipes_closed.done():
                self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(self.transport.get_returncode())


class Runtime:
    """What the server knows about one machine beyond its row: the live process and who waits on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.lock = asyncio.Lock()
        self.transport: asyncio.SubprocessTransport | None = None
        self.pgid: int | None = None
        self.exit_done: asyncio.Future | None = None
        self.user_stopped = False
        self.destroying = False
        self.kill_handle: asyncio.TimerHandle | None = None
        self.restart_handle: asyncio.TimerHandle | None = None
        self.started_at = 0.0
        self.fast_failures = 0
        self.waiters: list[tuple[str, asyncio.Future]] = []
        self.log_event = asyncio.Event()
        self.health_task: asyncio.Task | None = None

    @property
    def alive(self) -> bool:
        return self.transport is not None

    def wake_followers(self) -> None:
        self.log_event.set()
        self.log_event = asyncio.Event()


class Supervisor:
    def __init__(self, store: Store, data_dir: Path, isolation_problem: str | None = "not checked"):
        self.store = store
        self.data_dir = data_dir
        # None: every machine gets its own root (namespaces); else why not, and machines are plain processes
        self.isolation_problem = isolation_problem
        self.isolated = isolation_problem is None
        self.loop = asyncio.get_running_loop()
        self.runtimes: dict[str, Runtime] = {}
        self.tasks: set[asyncio.Task] = set()
        self.shutting_down = False
        self.sandbox_id = procs.sandbox_id(data_dir)
        self.sleep = shutil.which("sleep")

    # -- plumbing -----------------------------------------------------------------------------------------
    def rt(self, machine_id: str) -> Runtime:
        rt = self.runtimes.get(machine_id)
        if rt is None:
            rt = self.runtimes[machine_id] = Runtime(self.loop)
        return rt

    def root(self, machine_id: str) -> Path:
        return self.data_dir / "machines" / machine_id / "root"

    def volume_dir(self, namespace: str, name: str) -> Path:
        return self.data_dir / "volumes" / namespace / name

    def mounts(self, row, config: dict) -> list[isolation.Mount]:
        """What is mounted in the machine besides its own directory: the host's system directories (isolated
        machines only) and its volumes."""
        mounts = []
        if self.isolated:
            mounts = [isolation.Mount(path, Path(src), ro) for src, path, ro in isolation.system_mounts()]
        for vol in workload(config).get("volumes") or []:
            mounts.append(isolation.Mount(vol["path"], self.volume_dir(row["namespace"], vol["name"]), False))
        return mounts

    @staticmethod
    def secret_env(row, config: dict) -> dict[str, str]:
        """The secrets resolved when the machine was created (kept apart from its config: never shown)."""
        return json.loads(row["secret_env"] or "{}")

    @staticmethod
    def initial_health(config: dict) -> str | None:
        return "starting" if workload(config).get("health_check") else None

    def check_user(self, config: dict) -> str | None:
        """Why init.user cannot be honoured here (None when it can): it is never silently ignored."""
        user = (workload(config).get("init") or {}).get("user")
        return user_problem(user, self.isolated)

    def spawn_task(self, coro) -> asyncio.Task:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def record(self, machine_id: str, type_: str, status: str, origin: str = "ravel", payload: dict | None = None,
               **fields: Any) -> dict:
        event = self.store.record_event(machine_id, type_, status, origin, payload, **fields)
        rt = self.rt(machine_id)
        for wanted, fut in rt.waiters:
            if wanted == status and not fut.done():
                fut.set_result(True)
        if status == "destroyed":
            rt.wake_followers()
        return event

    def env(self, machine_id: str, config: dict, extra: dict[str, str] | None = None) -> dict[str, str]:
        root = self.root(machine_id)
        env = {
            "PATH": isolation.machine_path_env() if self.isolated else (
                os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin"),
            "HOME": "/" if self.isolated else str(root),
            "LANG": os.environ.get("LANG") or "C.UTF-8",
            # a pipe makes Python block-buffer stdout: its lines would reach `logs` only when it stops
            "PYTHONUNBUFFERED": "1",
        }
        for item in workload(config).get("env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        env.update(extra or {})
        env[procs.MACHINE_MARKER] = machine_id
        env[procs.SANDBOX_MARKER] = self.sandbox_id
        return env

    def add_log(self, machine_id: str, instance_id: str, fd: int, lines: list[bytes]) -> None:
        source, level = ("stdout", "info") if fd == 1 else ("stderr", "error")
        ts = time.time_ns() // 1_000_000
        rows = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            rows.append((machine_id, ts, instance_id, source, level, line.decode("utf-8", errors="replace")))
        self.store.add_logs(rows)
        self.rt(machine_id).wake_followers()

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def create(self, machine_id: str, skip_start: bool) -> None:
        self.record(machine_id, "machine.created", "created", "user")
        if not skip_start:
            async with self.rt(machine_id).lock:
                await self._start_locked(machine_id, is_restart=False, origin="ravel")

    async def start(self, machine_id: str) -> None:
        rt = self.rt(machine_id)
        async with rt.lock:
            state = self.store.machine_row(machine_id)["state"]
            if state in ALIVE:
                raise precondition(f"machine is already {state}")
            if state in ("destroying", "destroyed"):
                raise precondition(f"machine is {state}")
            if rt.restart_handle:
                rt.restart_handle.cancel()
                rt.restart_handle = None
            rt.fast_failures = 0
            self.store.update_machine(machine_id, restart_count=0)
            await self._start_locked(machine_id, is_restart=False, origin="user")

    async def _start_locked(self, machine_id: str, *, is_restart: bool, origin: str) -> None:
        row = self.store.machine_row(machine_id)
        config = json.loads(row["config"])
        rt = self.rt(machine_id)
        root = self.root(machine_id)
        if row["state"] == "created":
            self.record(machine_id, "machine.prepare", "preparing")
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.record(machine_id, "machine.prepare_failed", "stopped", payload={"prepare_failed": {"error": str(exc)}})
                return
            self.record(machine_id, "machine.prepared", "preparing")
        self.record(machine_id, "machine.start", "starting", origin, {"start": {"is_restart": is_restart}}, resume=0)
        init = workload(config).get("init") or {}
        argv = list(init.get("entrypoint") or []) + list(init.get("cmd") or [])
        piped = 2
        if not argv:
            self.add_log(machine_id, row["instance_id"], 1, [
                f"image {config.get('image')}: its own entrypoint is not run by the local sandbox; "
                "this machine idles".encode()
            ])
            argv = [self.sleep or "sleep", IDLE_SECONDS]
            piped = 0
        proto = _Protocol(self.loop, piped, lambda fd, lines: self.add_log(machine_id, row["instance_id"], fd, lines))
        out = subprocess.PIPE if piped else subprocess.DEVNULL
        try:
            env = self.env(machine_id, config, self.secret_env(row, config))
            if not root.is_dir():
                root.mkdir(parents=True, exist_ok=True)
            args, cwd = self._launch(row, config, argv, env)
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
            self.add_log(machine_id, row["instance_id"], 2, [error.encode()])
            self.record(machine_id, "machine.start_failed", "stopped", payload={"start_failed": {"error": error}},
                        pid=None)
            return
        rt.transport = transport
        rt.pgid = transport.get_pid()
        rt.user_stopped = False
        rt.exit_done = self.loop.create_future()
        rt.started_at = time.monotonic()
        self.record(machine_id, "machine.started", "running", payload={"started": {"started_at": now_rfc3339()}},
                    pid=rt.pgid)
        self.spawn_task(self._watch(machine_id, rt, proto))
        check = workload(config).get("health_check")
        if check:
            self.store.update_machine(machine_id, health="starting")
            rt.health_task = self.spawn_task(self._health(machine_id, rt, check))

    async def _health(self, machine_id: str, rt: Runtime, check: dict) -> None:
        """Ravel's agent loop (agent/machinerunner/healthcheck.go): every `interval` seconds run `exec` in the
        machine; `retries` failures in a row make it unhealthy, one success healthy; an event on each change."""
        interval = check.get("interval") or 30
        timeout = check.get("timeout") or 5
        retries = check.get("retries") or 3
        failures = 0
        health = "starting"
        transport = rt.transport
        while True:
            await asyncio.sleep(interval)
            if rt.transport is not transport or self.shutting_down:
                return
            try:
                result = await self.exec(machine_id, list(check["exec"]), timeout * 1000)
                ok = result["exit_code"] == 0
            except Problem:
                return  # no longer running
            failures = 0 if ok else failures + 1
            new = "healthy" if ok else ("unhealthy" if failures >= retries else health)
            if new != health and rt.transport is transport:
                health = new
                row = self.store.machine_row(machine_id)
                self.record(machine_id, "machine.health", row["state"], payload={
                    "health": {"status": health, "consecutive_failures": failures}}, health=health)

    def _launch(self, row, config: dict, argv: list[str], env: dict) -> tuple[list[str], str]:
        """(argv, cwd) that start the workload: through the namespace launcher, or as a plain process."""
        machine_id = row["id"]
        root = self.root(machine_id)
        mounts = self.mounts(row, config)
        for m in mounts:
            if not m.read_only:
                m.host.mkdir(parents=True, exist_ok=True)  # a volume is created on first use
        user = (workload(config).get("init") or {}).get("user")
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

    async def _watch(self, machine_id: str, rt: Runtime, proto: _Protocol) -> None:
        returncode = await proto.exited
        procs.killpg(rt.pgid, signal.SIGKILL)  # what it left behind in its group: a stopped VM runs nothing
        if not self.isolated:  # isolated: the kernel ended its PID namespace; else find setsid children too
            procs.kill_machine_processes(self.data_dir, machine_id)
        try:
            await asyncio.wait_for(asyncio.shield(proto.pipes_closed), 1.0)
        except asyncio.TimeoutError:
            pass
        proto.flush()
        rt.transport.close()
        self._on_exit(machine_id, rt, procs.exit_code_of(returncode))

    def _on_exit(self, machine_id: str, rt: Runtime, code: int) -> None:
        rt.transport = None
        rt.pgid = None
        if rt.health_task:
            rt.health_task.cancel()
            rt.health_task = None
        if rt.kill_handle:
            rt.kill_handle.cancel()
            rt.kill_handle = None
        user_stopped, rt.user_stopped = rt.user_stopped, False
        ran = time.monotonic() - rt.started_at
        rt.fast_failures = rt.fast_failures + 1 if ran < 10 else 0
        status = "destroying" if rt.destroying else "stopped"
        self.record(machine_id, "machine.exited", status, payload={"stopped": {"exit_code": code, "exited_at": now_rfc3339()}},
                    pid=None, last_exit_code=code)
        if rt.exit_done and not rt.exit_done.done():
            rt.exit_done.set_result(code)
        if rt.destroying:
            return
        if self.shutting_down:
            if not user_stopped:
                self.store.update_machine(machine_id, resume=1)
            return
        self._after_exit(machine_id, code, user_stopped)

    def _after_exit(self, machine_id: str, code: int, user_stopped: bool) -> None:
        """Apply the restart policy, then auto_destroy, to an exit."""
        row = self.store.machine_row(machine_id)
        config = json.loads(row["config"])
        policy, max_retries = restart_policy(config)
        restart = not user_stopped and (
            policy == "always" or (policy == "on-failure" and code != 0 and row["restart_count"] < max_retries)
        )
        rt = self.rt(machine_id)
        if restart:
            self.store.update_machine(machine_id, resume=1, restart_count=row["restart_count"] + 1)
            delay = min(0.1 * 2 ** max(rt.fast_failures - 1, 0), 5.0)
            rt.restart_handle = self.loop.call_later(delay, lambda: self.spawn_task(self._restart(machine_id)))
        else:
            self.store.update_machine(machine_id, resume=0)
            if auto_destroy(config):
                self.spawn_task(self._auto_destroy(machine_id))

    async def _restart(self, machine_id: str) -> None:
        rt = self.rt(machine_id)
        async with rt.lock:
            rt.restart_handle = None
            row = self.store.machine_row(machine_id)
            if self.shutting_down or row["state"] != "stopped" or not row["resume"]:
                return
            await self._start_locked(machine_id, is_restart=True, origin="ravel")

    async def _auto_destroy(self, machine_id: str) -> None:
        try:
            await self.destroy(machine_id, force=False, auto=True)
        except Problem:
            pass  # started again, or destroyed, meanwhile

    async def stop(self, machine_id: str, override: dict | None = None) -> None:
        rt = self.rt(machine_id)
        async with rt.lock:
            row = self.store.machine_row(machine_id)
            state = row["state"]
            if state == "stopped" and rt.restart_handle:  # stopping a machine between two restarts
                rt.restart_handle.cancel()
                rt.restart_handle = None
                self.store.update_machine(machine_id, resume=0)
                return
            if state == "stopping":
                return
            if state not in ALIVE or not rt.alive:
                raise precondition(f"machine is not running (state: {state})")
            sig_name, timeout = stop_config(json.loads(row["config"]), override)
            rt.user_stopped = True
            self.record(machine_id, "machine.stop", "stopping", "user",
                        {"stop": {"config": {"timeout": timeout, "signal": sig_name}}})
            procs.killpg(rt.pgid, signal.Signals[sig_name])
            pgid = rt.pgid
            rt.kill_handle = self.loop.call_later(timeout, procs.killpg, pgid, signal.SIGKILL)

    async def destroy(self, machine_id: str, force: bool, auto: bool = False) -> None:
        rt = self.rt(machine_id)
        async with rt.lock:
            state = self.store.machine_row(machine_id)["state"]
            if state in ("destroying", "destroyed"):
                raise precondition(f"machine is already {state}")
            if auto and state != "stopped":
                raise precondition("machine is not stopped")
            if rt.alive and not force:
                raise precondition(
                    f"machine is {state}: stop it first, or destroy it with force=true"
                )
            if rt.restart_handle:
                rt.restart_handle.cancel()
                rt.restart_handle = None
            reason = "auto_destroy: the machine exited" if auto else "requested by the user"
            self.record(machine_id, "machine.destroy", "destroying", "ravel" if auto else "user",
                        {"destroy": {"auto_destroy": auto, "reason": reason, "force": force}}, resume=0)
            if rt.alive:
                rt.destroying = True
                done = rt.exit_done
                procs.killpg(rt.pgid, signal.SIGKILL)
                try:
                    await asyncio.wait_for(asyncio.shield(done), 10)
                except asyncio.TimeoutError:
                    pass
                rt.destroying = False
            await self._remove_files(machine_id)
            self.record(machine_id, "machine.destroyed", "destroyed", pid=None)

    async def _remove_files(self, machine_id: str) -> None:
        path = self.data_dir / "machines" / machine_id
        if path.exists():
            await asyncio.to_thread(shutil.rmtree, path, True)

    # -- waiting and reading ------------------------------------------------------------------------------
    async def wait_for(self, machine_id: str, status: str, timeout: float) -> bool:
        if self.store.machine_row(machine_id)["state"] == status:
            return True
        if self.shutting_down:
            raise ShuttingDown()
        rt = self.rt(machine_id)
        fut = self.loop.create_future()
        entry = (status, fut)
        rt.waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            rt.waiters.remove(entry)

    async def exec(self, machine_id: str, cmd: list[str], timeout_ms: int) -> dict:
        row = self.store.machine_row(machine_id)
        if row["state"] != "running" or not self.rt(machine_id).alive:
            raise precondition(f"machine is not running (state: {row['state']})")
        config = json.loads(row["config"])
        proto = _Protocol(self.loop, 2)
        env = self.env(machine_id, config, self.secret_env(row, config))
        try:
            args, cwd = await self._exec_argv(row, config, cmd, env)
            args, preexec = procs.spawn_args(args)
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
        timed_out = False
        try:
            try:
                returncode = await asyncio.wait_for(asyncio.shield(proto.exited), timeout_ms / 1000)
            except asyncio.TimeoutError:
                timed_out = True
                procs.killpg(pgid, signal.SIGKILL)
                returncode = await proto.exited
            procs.killpg(pgid, signal.SIGKILL)
            try:
                await asyncio.wait_for(asyncio.shield(proto.pipes_closed), 1.0)
            except asyncio.TimeoutError:
                pass
        finally:
            if not proto.exited.done():  # the request was cancelled: leave nothing running
                procs.killpg(pgid, signal.SIGKILL)
            transport.close()
        stdout = b"".join(proto.chunks[1]).decode("utf-8", errors="replace")
        stderr = b"".join(proto.chunks[2]).decode("utf-8", errors="replace")
        if timed_out:
            stderr += f"exec: timed out after {timeout_ms} ms, killed\n"
            return {"stdout": stdout, "stderr": stderr, "exit_code": 124}
        return {"stdout": stdout, "stderr": stderr, "exit_code": procs.exit_code_of(returncode)}

    async def _exec_argv(self, row, config: dict, cmd: list[str], env: dict) -> tuple[list[str], str | None]:
        """(argv, cwd) that run `cmd` in a running machine: joining its namespaces, or as a plain process.
        Raises FileNotFoundError / PermissionError for a command the machine cannot run."""
        root = self.root(row["id"])
        if self.isolated:
            isolation.resolve_executable(cmd[0], env["PATH"], root, self.mounts(row, config))
            return isolation.exec_argv(await self._init_pid(row["id"]), cmd), None
        procs.check_executable(cmd[0], env["PATH"], str(root))
        return list(cmd), str(root)

    async def _init_pid(self, machine_id: str) -> int:
        """The host pid of an isolated machine's init, once it has set the machine up (it writes init.pid then)."""
        path = self.root(machine_id).parent / "init.pid"
        rt = self.rt(machine_id)
        deadline = time.monotonic() + 10
        while True:
            try:
                return int(path.read_text().strip())
            except (OSError, ValueError):
                pass
            if not rt.alive or time.monotonic() > deadline:
                raise precondition("machine is not running (its init did not come up)")
            await asyncio.sleep(0.02)

    # -- server start and stop ----------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Bring the database in line with reality after the previous server stopped or died."""
        procs.kill_machine_processes(self.data_dir)  # survivors of the previous server, found by their marker
        for row in self.store.machines_in_states(("preparing", "starting", "running", "stopping")):
            user_stopped = row["state"] == "stopping"
            self.record(row["id"], "machine.exited", "stopped",
                        payload={"stopped": {"exit_code": 137, "exited_at": now_rfc3339()}},
                        pid=None, last_exit_code=137, resume=0 if user_stopped else 1)
            if user_stopped and auto_destroy(json.loads(row["config"])):
                await self._auto_destroy(row["id"])
        for row in self.store.machines_in_states(("destroying",)):
            await self._remove_files(row["id"])
            self.record(row["id"], "machine.destroyed", "destroyed", pid=None)
        for row in self.store.machines_to_resume():
            self._after_exit(row["id"], row["last_exit_code"] or 0, user_stopped=False)

    def begin_shutdown(self) -> None:
        """Called as soon as the server is asked to stop: end long polls and log followers (the HTTP server
        waits for open responses before it stops the app), and restart nothing from now on."""
        self.shutting_down = True
        for rt in self.runtimes.values():
            if rt.restart_handle:
                rt.restart_handle.cancel()
                rt.restart_handle = None
            for _, fut in rt.waiters:
                if not fut.done():
                    fut.set_exception(ShuttingDown())
            rt.wake_followers()

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stop every machine: its stop signal, SIGKILL after min(its stop timeout, grace)."""
        self.begin_shutdown()
        pending = []
        for mid, rt in list(self.runtimes.items()):
            if not rt.alive:
                continue
            row = self.store.machine_row(mid)
            sig_name, timeout = stop_config(json.loads(row["config"]))
            procs.killpg(rt.pgid, signal.Signals[sig_name])
            rt.kill_handle = self.loop.call_later(min(timeout, grace), procs.killpg, rt.pgid, signal.SIGKILL)
            pending.append(rt.exit_done)
        if pending:
            await asyncio.wait(pending, timeout=grace + 2)
        for rt in self.runtimes.values():
            if rt.alive:
                procs.killpg(rt.pgid, signal.SIGKILL)
        procs.kill_machine_processes(self.data_dir)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)


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
