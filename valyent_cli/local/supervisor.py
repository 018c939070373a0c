"""Machines: their lifecycle, events, restart policies, logs and exec, whatever runs them.

How a machine runs is its driver's business (`local/drivers/`: local processes, or containers of its image with
podman or docker); the supervisor calls it to prepare, spawn, signal, exec and remove, and keeps the state.
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
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

# EXEC_OUTPUT_LIMIT: what `exec` keeps of each of stdout and stderr (drivers/base.py applies it to every driver)
from valyent_cli.local.drivers.base import EXEC_OUTPUT_LIMIT, Driver, Instance, PrepareFailed, StartFailed  # noqa: F401
from valyent_cli.local.drivers.process import ProcessDriver
from valyent_cli.api.constants import DEFAULT_STOP_SIGNAL
from valyent_cli.local.problems import Problem, precondition, signal_number
from valyent_cli.local.retention import DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_LINES, log_retention  # noqa: F401
from valyent_cli.local.store import LIVE_STATES, Store, is_disk_full, now_rfc3339

ALIVE = ("starting", "running", "stopping")
DEFAULT_STOP_TIMEOUT = 5
DEFAULT_MAX_RETRIES = 3
#: the log of a destroyed machine is removed this long after it is destroyed (followers read its last lines)
DESTROYED_LOG_GRACE = 30.0
#: space kept in <data>/reserve for lifecycle writes: freed when one fails on a full disk, so that stop and
#: delete still work; log lines are dropped (counted, and said) while less than this is free
RESERVE_SIZE = 2 * 1024 * 1024


class ShuttingDown(Exception):
    pass


def workload(config: dict) -> dict:
    return config.get("workload") or {}


def restart_policy(config: dict) -> tuple[str, int]:
    w = workload(config)
    r = w.get("restart") or {}
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


class Runtime:
    """What the server knows about one machine beyond its row: the live process and who waits on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.lock = asyncio.Lock()
        self.instance: Instance | None = None
        self.exit_done: asyncio.Future | None = None
        self.user_stopped = False
        self.destroying = False
        self.kill_handle: asyncio.TimerHandle | None = None
        self.restart_handle: asyncio.TimerHandle | None = None
        self.started_at = 0.0
        self.fast_failures = 0
        self.waiters: list[tuple[str, asyncio.Future]] = []
        self.log_event = asyncio.Event()
        self.log_usage: tuple[int, int] | None = None  # (entries, characters) kept; counted on first use
        self.health_task: asyncio.Task | None = None

    @property
    def alive(self) -> bool:
        return self.instance is not None

    def wake_followers(self) -> None:
        self.log_event.set()
        self.log_event = asyncio.Event()


class Supervisor:
    def __init__(self, store: Store, data_dir: Path, driver: Driver | None = None):
        self.store = store
        self.data_dir = data_dir
        self.loop = asyncio.get_running_loop()
        self.driver: Driver = driver or ProcessDriver(data_dir)
        # the process driver isolates machines with namespaces where it can ("namespaces"), else not at all
        # ("none", and isolation_problem says why); container drivers: "container"
        self.isolation = self.driver.isolation
        self.isolation_problem = self.driver.isolation_problem
        self.isolated = self.isolation != "none"
        self.runtimes: dict[str, Runtime] = {}
        self.tasks: set[asyncio.Task] = set()
        self.shutting_down = False
        self.log_max_lines, self.log_max_bytes = log_retention()
        self.log_removals: set[asyncio.Task] = set()  # the next start finishes what a stop interrupts
        self.reserve = data_dir / "reserve"
        self.dropped_logs: dict[str, int] = {}  # machine -> log lines dropped on a full disk, not said yet in it
        self.watchers: list = []  # called with a machine's id after each of its events (the gateways)
        self.make_reserve()

    def make_reserve(self) -> None:
        if self.reserve.exists():
            return
        try:
            with open(self.reserve, "wb") as f:
                f.write(b"\0" * RESERVE_SIZE)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            self.reserve.unlink(missing_ok=True)

    def release_reserve(self) -> bool:
        try:
            self.reserve.unlink()
            return True
        except OSError:
            return False

    def disk_nearly_full(self) -> bool:
        try:
            st = os.statvfs(self.data_dir)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < RESERVE_SIZE

    # -- plumbing -----------------------------------------------------------------------------------------
    def rt(self, machine_id: str) -> Runtime:
        rt = self.runtimes.get(machine_id)
        if rt is None:
            rt = self.runtimes[machine_id] = Runtime(self.loop)
        return rt

    def root(self, machine_id: str) -> Path:
        return self.data_dir / "machines" / machine_id / "root"

    async def fs_mounts(self, row, config: dict) -> list:
        """Mounts the fs API resolves itself (volumes, and the process driver's system dirs)."""
        return await self.driver.fs_mounts(row["namespace"], config)

    @staticmethod
    def secret_env(row, config: dict) -> dict[str, str]:
        """The secrets resolved when the machine was created (kept apart from its config: never shown)."""
        return json.loads(row["secret_env"] or "{}")

    @staticmethod
    def initial_health(config: dict) -> str | None:
        return "starting" if workload(config).get("health_check") else None

    def check_user(self, config: dict) -> str | None:
        """Why init.user cannot be honoured here (None when it can): it is never silently ignored."""
        return self.driver.check_user(config)

    def spawn_task(self, coro) -> asyncio.Task:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def record(self, machine_id: str, type_: str, status: str, origin: str = "ravel", payload: dict | None = None,
               **fields: Any) -> dict:
        try:
            event = self.store.record_event(machine_id, type_, status, origin, payload, **fields)
        except (OSError, sqlite3.Error) as exc:
            # A full disk: free the reserve and try once more, so that a machine can still be stopped or deleted.
            if not is_disk_full(exc) or not self.release_reserve():
                raise
            print("the disk holding the sandbox's data is full: released the space kept for machine state "
                  "changes; free some space", file=sys.stderr, flush=True)
            event = self.store.record_event(machine_id, type_, status, origin, payload, **fields)
        for watcher in self.watchers:
            watcher(machine_id)
        rt = self.rt(machine_id)
        for wanted, fut in rt.waiters:
            if wanted == status and not fut.done():
                fut.set_result(True)
        if status == "destroyed":
            rt.wake_followers()
        return event

    def env(self, machine_id: str, config: dict, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The machine's own environment (workload env, then `extra`: its secrets); the driver adds what its way of
        running needs (PATH, HOME for processes)."""
        # a pipe makes Python block-buffer stdout: its lines would reach `logs` only when it stops
        env: dict[str, str] = {"PYTHONUNBUFFERED": "1"}
        for item in workload(config).get("env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        env.update(extra or {})
        return env

    def gateway_ports(self, row) -> list[int]:
        return [gw["target_port"] for gw in self.store.list_gateways(row["fleet_id"])]

    def add_log(self, machine_id: str, instance_id: str, fd: int, lines: list[bytes]) -> None:
        source, level = ("stdout", "info") if fd == 1 else ("stderr", "error")
        ts = time.time_ns() // 1_000_000
        rows = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            rows.append((machine_id, ts, instance_id, source, level, line.decode("utf-8", errors="replace")))
        if not self._write_logs(machine_id, rows):
            return
        rt = self.rt(machine_id)
        self._retain(machine_id, rt, len(rows), sum(len(r[5]) for r in rows))
        rt.wake_followers()

    def _write_logs(self, machine_id: str, rows: list[tuple]) -> bool:
        """Store log lines, apart from lifecycle writes. On a full disk (or with less than the reserve free) they
        are dropped: the server's log says so once, and the machine's log once there is room again."""
        dropped = self.dropped_logs.get(machine_id, 0)
        count = len(rows)
        try:
            if self.disk_nearly_full():
                raise OSError(28, "No space left on device")
            if dropped:
                ts = rows[0][1]
                rows = [(machine_id, ts, rows[0][2], "stderr", "error",
                         f"[sandbox] {dropped} log line(s) of this machine were dropped: no space left on the disk "
                         "that holds the sandbox's data")] + rows
            self.store.add_logs(rows)
        except (OSError, sqlite3.Error) as exc:
            if not is_disk_full(exc):
                raise
            if not dropped:
                print(f"machine {machine_id}: dropping its log lines: no space left on the disk that holds the "
                      "sandbox's data", file=sys.stderr, flush=True)
            self.dropped_logs[machine_id] = dropped + count
            return False
        if dropped:
            del self.dropped_logs[machine_id]
            print(f"machine {machine_id}: storing log lines again ({dropped} dropped)", file=sys.stderr, flush=True)
            self.make_reserve()
        return True

    def _retain(self, machine_id: str, rt: Runtime, lines: int, chars: int) -> None:
        """Keep a machine's log within the retention: once it is 10 % over the lines or the bytes, drop the oldest
        entries down to both limits (the bytes limit through the log's average line length)."""
        if rt.log_usage is None:
            rt.log_usage = self.store.log_usage(machine_id)
        else:
            rt.log_usage = (rt.log_usage[0] + lines, rt.log_usage[1] + chars)
        count, size = rt.log_usage
        if count <= self.log_max_lines * 1.1 and size <= self.log_max_bytes * 1.1:
            return
        average = max(size / count, 1.0)
        keep = max(1, min(self.log_max_lines, int(self.log_max_bytes / average)))
        self.store.prune_logs(machine_id, keep)
        rt.log_usage = (keep, int(keep * average))

    def _spawn_log_removal(self, machine_id: str, delay: float = 0.0) -> None:
        task = self.spawn_task(self._remove_logs(machine_id, delay))
        self.log_removals.add(task)
        task.add_done_callback(self.log_removals.discard)

    async def _remove_logs(self, machine_id: str, delay: float = 0.0) -> None:
        """Remove a destroyed machine's log, in batches that let the server answer in between."""
        if delay:
            await asyncio.sleep(delay)
        while self.store.delete_logs(machine_id) > 0:
            await asyncio.sleep(0)
        self.rt(machine_id).log_usage = None

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def create(self, machine_id: str, skip_start: bool) -> None:
        """With a driver whose preparation is engine work, the create answers `created` and the start runs after,
        as Ravel's agent does (agent/machine.go PutMachine: `go machine.Run()`); events tell the rest."""
        self.record(machine_id, "machine.created", "created", "user")
        if not skip_start and self.driver.prepares_in_background:
            self.spawn_task(self._first_start(machine_id))  # it takes the machine's lock before any next request
        elif not skip_start:
            await self._first_start(machine_id)

    async def _first_start(self, machine_id: str) -> None:
        async with self.rt(machine_id).lock:
            if self.store.machine_row(machine_id)["state"] == "created" and not self.shutting_down:
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
        env = self.env(machine_id, config, self.secret_env(row, config))
        ns = row["namespace"]
        # Every start prepares (the driver does nothing when all is there), so that a start after a failed
        # pull pulls again; the prepare events are recorded for the first one and whenever there is progress.
        first = row["state"] == "created"
        if first:
            self.record(machine_id, "machine.prepare", "preparing")

        def progress(line: str) -> None:
            self.record(machine_id, "machine.prepare", "preparing", payload={"prepare": {"progress": line}})

        try:
            await self.driver.prepare(machine_id, config, env, self.gateway_ports(row), progress, namespace=ns)
        except PrepareFailed as exc:
            self.add_log(machine_id, row["instance_id"], 2, [str(exc).encode()])
            self.record(machine_id, "machine.prepare_failed", "stopped",
                        payload={"prepare_failed": {"error": str(exc)}})
            return
        if first:
            self.record(machine_id, "machine.prepared", "preparing")
        self.record(machine_id, "machine.start", "starting", origin, {"start": {"is_restart": is_restart}}, resume=0)
        try:
            instance = await self.driver.spawn(
                machine_id, config, env, lambda fd, lines: self.add_log(machine_id, row["instance_id"], fd, lines),
                namespace=ns)
        except StartFailed as exc:
            error = str(exc)
            self.add_log(machine_id, row["instance_id"], 2, [error.encode()])
            self.record(machine_id, "machine.start_failed", "stopped", payload={"start_failed": {"error": error}},
                        pid=None)
            return
        rt.instance = instance
        rt.user_stopped = False
        rt.exit_done = self.loop.create_future()
        rt.started_at = time.monotonic()
        self.record(machine_id, "machine.started", "running", payload={"started": {"started_at": now_rfc3339()}},
                    pid=instance.pid)
        self.spawn_task(self._watch(machine_id, rt, instance))
        check = workload(config).get("health_check")
        if check:
            self.store.update_machine(machine_id, health="starting")
            rt.health_task = self.spawn_task(self._health(machine_id, rt, check))

    async def _health(self, machine_id: str, rt: Runtime, check: dict) -> None:
        """Ravel's agent loop (agent/machinerunner/healthcheck.go): every `interval` seconds run `exec` in the
        machine (inside its container with a container driver); `retries` failures in a row make it unhealthy,
        one success healthy; an event on each change."""
        interval = check.get("interval") or 30
        timeout = check.get("timeout") or 5
        retries = check.get("retries") or 3
        failures = 0
        health = "starting"
        instance = rt.instance
        while True:
            await asyncio.sleep(interval)
            if rt.instance is not instance or self.shutting_down:
                return
            try:
                result = await self.exec(machine_id, list(check["exec"]), timeout * 1000)
                ok = result["exit_code"] == 0
            except Problem:
                return  # no longer running
            failures = 0 if ok else failures + 1
            new = "healthy" if ok else ("unhealthy" if failures >= retries else health)
            # an event on each change, and on each failure until unhealthy, with the check's output (the sandbox's
            # addition to Ravel's payload: what failed shows in `events`, `machines show` and `wait --healthy`)
            if (new != health or not ok and new != "unhealthy") and rt.instance is instance:
                health, output = new, (result.get("stdout") or "") + (result.get("stderr") or "")
                self.record(machine_id, "machine.health", self.store.machine_row(machine_id)["state"], payload={"health": {
                    "status": health, "consecutive_failures": failures, "output": output.strip()[-500:]}}, health=health)

    async def _watch(self, machine_id: str, rt: Runtime, instance: Instance) -> None:
        code = await instance.exited
        self._on_exit(machine_id, rt, code)

    def _on_exit(self, machine_id: str, rt: Runtime, code: int) -> None:
        rt.instance = None
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
            rt.instance.signal(signal.Signals[sig_name])
            rt.kill_handle = self.loop.call_later(timeout, rt.instance.kill)

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
                rt.instance.kill()
                try:
                    await asyncio.wait_for(asyncio.shield(done), 10)
                except asyncio.TimeoutError:
                    pass
                rt.destroying = False
            await self._remove_files(machine_id)
            self.record(machine_id, "machine.destroyed", "destroyed", pid=None)
            self._spawn_log_removal(machine_id, DESTROYED_LOG_GRACE)

    async def _remove_files(self, machine_id: str) -> None:
        await self.driver.remove(machine_id)

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
        env = self.env(machine_id, config, self.secret_env(row, config))
        return await self.driver.exec(machine_id, config, env, cmd, timeout_ms, namespace=row["namespace"])

    async def fs_root(self, machine_id: str) -> Path:
        return await self.driver.fs_root(machine_id)

    # -- server start and stop ----------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Bring the database in line with reality after the previous server stopped or died."""
        keep = {row["id"] for row in self.store.machines_in_states(LIVE_STATES)}
        await self.driver.reconcile(keep)  # what the previous server left running, found by its marker or label
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
        for machine_id in self.store.machines_with_logs_destroyed():  # destroyed before, or within the grace
            self._spawn_log_removal(machine_id)
        for row in self.store.machines_to_resume():
            self._after_exit(row["id"], row["last_exit_code"] or 0, user_stopped=False)

    def begin_shutdown(self) -> None:
        """Called as soon as the server is asked to stop: end long polls and log followers (the HTTP server
        waits for open responses before it stops the app), and restart nothing from now on."""
        self.shutting_down = True
        for task in list(self.log_removals):
            task.cancel()
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
            rt.instance.signal(signal.Signals[sig_name])
            rt.kill_handle = self.loop.call_later(min(timeout, grace), rt.instance.kill)
            pending.append(rt.exit_done)
        if pending:
            await asyncio.wait(pending, timeout=grace + 2)
        for rt in self.runtimes.values():
            if rt.alive:
                rt.instance.kill()
        await self.driver.shutdown()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)
