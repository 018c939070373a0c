"""Machines as local processes (the driver used when no container engine is there, or with --driver process).

Every machine process runs `entrypoint + cmd` without a shell, in its own session (so a signal reaches everything
it started), in `<data_dir>/machines/<id>/root`, and dies with the server (PR_SET_PDEATHSIG). The image is not run:
a machine without a command idles. exec: a missing executable exits 127, one that cannot be run 126, a timeout
kills it and exits 124.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path

from valyent_cli.local import procs
from valyent_cli.local.drivers.base import Driver, Instance, LineSink, Pipes, PrepareFailed, StartFailed

IDLE_SECONDS = "2147483647"


class ProcessInstance(Instance):
    def __init__(self, loop: asyncio.AbstractEventLoop, transport, proto: Pipes):
        self.transport = transport
        self.proto = proto
        self.pid = transport.get_pid()
        self.exited = loop.create_task(self._wait())

    async def _wait(self) -> int:
        returncode = await self.proto.exited
        procs.killpg(self.pid, signal.SIGKILL)  # what it left behind in its group: a stopped VM runs nothing
        try:
            await asyncio.wait_for(asyncio.shield(self.proto.pipes_closed), 1.0)
        except asyncio.TimeoutError:
            pass
        self.proto.flush()
        self.transport.close()
        return procs.exit_code_of(returncode)

    def signal(self, sig: signal.Signals) -> None:
        procs.killpg(self.pid, sig)


class ProcessDriver(Driver):
    name = "process"

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.loop = asyncio.get_running_loop()
        self.sandbox_id = procs.sandbox_id(data_dir)
        self.sleep = shutil.which("sleep")

    def root(self, machine_id: str) -> Path:
        return self.data_dir / "machines" / machine_id / "root"

    def create_notice(self, config: dict) -> str | None:
        return (f"the local sandbox runs with the process driver: image {config.get('image')!r} is not run, the "
                "machine's command runs as a process on this computer (start the sandbox with --driver podman "
                "or docker to run images)")

    def env(self, machine_id: str, user_env: dict[str, str]) -> dict[str, str]:
        root = self.root(machine_id)
        env = {
            "PATH": os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(root),
            "LANG": os.environ.get("LANG") or "C.UTF-8",
        }
        env.update(user_env)
        env[procs.MACHINE_MARKER] = machine_id
        env[procs.SANDBOX_MARKER] = self.sandbox_id
        return env

    async def prepare(self, machine_id, config, env, ports, progress) -> None:
        try:
            self.root(machine_id).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PrepareFailed(str(exc)) from None

    async def spawn(self, machine_id: str, config: dict, env: dict[str, str], on_lines: LineSink) -> Instance:
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
        env = self.env(machine_id, env)
        try:
            if not root.is_dir():
                root.mkdir(parents=True, exist_ok=True)
            procs.check_executable(argv[0], env["PATH"], str(root))
            args, preexec = procs.spawn_args(argv)
            transport, _ = await self.loop.subprocess_exec(
                lambda: proto, *args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=str(root),
                env=env, start_new_session=True, preexec_fn=preexec,
            )
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            if isinstance(exc, FileNotFoundError):
                error = f"exec: {argv[0]!r}: executable file not found in $PATH"
            elif isinstance(exc, PermissionError):
                error = f"exec: {argv[0]!r}: permission denied"
            else:
                error = f"exec: {argv[0]!r}: {exc}"
            raise StartFailed(error) from None
        return ProcessInstance(self.loop, transport, proto)

    async def exec(self, machine_id: str, config: dict, env: dict[str, str], cmd: list[str], timeout_ms: int) -> dict:
        proto = Pipes(self.loop, 2)
        env = self.env(machine_id, env)
        root = str(self.root(machine_id))
        try:
            procs.check_executable(cmd[0], env["PATH"], root)
            args, preexec = procs.spawn_args(cmd)
            transport, _ = await self.loop.subprocess_exec(
                lambda: proto, *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=root, env=env, start_new_session=True, preexec_fn=preexec,
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
        stdout, stderr = proto.output()
        if timed_out:
            stderr += f"exec: timed out after {timeout_ms} ms, killed\n"
            return {"stdout": stdout, "stderr": stderr, "exit_code": 124}
        return {"stdout": stdout, "stderr": stderr, "exit_code": procs.exit_code_of(returncode)}

    async def fs_root(self, machine_id: str) -> Path:
        return self.root(machine_id)

    async def remove(self, machine_id: str) -> None:
        path = self.data_dir / "machines" / machine_id
        if path.exists():
            await asyncio.to_thread(shutil.rmtree, path, True)

    async def reconcile(self, keep: set[str]) -> None:
        procs.kill_machine_processes(self.data_dir)  # survivors of the previous server, found by their marker

    async def shutdown(self) -> None:
        procs.kill_machine_processes(self.data_dir)
