"""The driver seam: what the supervisor asks of a way to run machines, and the pipe plumbing drivers share.

A driver never touches the database: it gets a machine's id and config and answers with an `Instance` (a running
machine: its exit, and how to signal it), an exec result, a filesystem root or a port to reach.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Callable

MAX_LINE = 64 * 1024
#: what `exec` keeps of each of stdout and stderr; the rest is read and dropped, and the answer says so
EXEC_OUTPUT_LIMIT = 4 * 1024 * 1024

#: on_lines(fd, [line bytes]): fd 1 is stdout, 2 stderr
LineSink = Callable[[int, list[bytes]], None]


class PrepareFailed(Exception):
    """The machine cannot be prepared (its image cannot be pulled, its container not created): the message is
    the engine's own."""


class StartFailed(Exception):
    """The machine's command cannot be started; the message says why, as Ravel's start_failed error does."""


class Pipes(asyncio.SubprocessProtocol):
    """Receives a process's output and exit. `on_lines(fd, [bytes])` gets whole lines as they come; without it
    the output is kept in `chunks` (exec)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, piped: int, on_lines: LineSink | None = None):
        self.on_lines = on_lines
        self.transport: asyncio.SubprocessTransport | None = None
        self.exited: asyncio.Future = loop.create_future()
        self.pipes_closed: asyncio.Future = loop.create_future()
        self.open_pipes = piped
        self.partial = {1: b"", 2: b""}
        self.chunks: dict[int, list[bytes]] = {1: [], 2: []}
        self.kept = {1: 0, 2: 0}
        self.dropped = {1: 0, 2: 0}
        if not piped:
            self.pipes_closed.set_result(None)

    def connection_made(self, transport) -> None:
        self.transport = transport

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self.on_lines is None:  # exec: keep at most EXEC_OUTPUT_LIMIT of each stream, count the rest
            room = EXEC_OUTPUT_LIMIT - self.kept[fd]
            if len(data) > room:
                self.dropped[fd] += len(data) - max(room, 0)
                data = data[:max(room, 0)]
            if data:
                self.chunks[fd].append(data)
                self.kept[fd] += len(data)
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

    async def settle(self, timeout: float) -> None:
        """Wait up to `timeout` s for the output pipes to close (a child that outlives the process keeps them
        open: its output is not waited for past that)."""
        try:
            await asyncio.wait_for(asyncio.shield(self.pipes_closed), timeout)
        except asyncio.TimeoutError:
            pass

    def output(self) -> tuple[str, str]:
        """(stdout, stderr) of an exec: bytes that are not UTF-8 kept as lone surrogates (the JSON answer carries
        them as `\\udcXX`, which the CLI writes back as those bytes); a stream cut at the limit is said on stderr."""
        stdout = b"".join(self.chunks[1]).decode("utf-8", errors="surrogateescape")
        stderr = b"".join(self.chunks[2]).decode("utf-8", errors="surrogateescape")
        for fd, stream in ((1, "stdout"), (2, "stderr")):
            if self.dropped[fd]:
                stderr += (f"exec: {stream} cut at {EXEC_OUTPUT_LIMIT} bytes by the sandbox; "
                           f"{self.dropped[fd]} more bytes were dropped\n")
        return stdout, stderr


class Instance:
    """One run of a machine. `exited` resolves to its shell-style exit code once it ended and its output is in."""

    pid: int | None = None
    exited: asyncio.Future

    def signal(self, sig: signal.Signals) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def kill(self) -> None:
        self.signal(signal.SIGKILL)


class PipedInstance(Instance):
    """An instance that is a process whose output `proto` receives; `_wait` (a driver's) resolves `exited`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, transport, proto: Pipes):
        self.transport = transport
        self.proto = proto
        self.pid = transport.get_pid()
        self.exited = loop.create_task(self._wait())

    async def _wait(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    async def _collect(self, settle: float) -> None:
        """The process ended: take what its pipes still hold, then let them go."""
        await self.proto.settle(settle)
        self.proto.flush()
        self.transport.close()


async def finish_exec(proto: Pipes, transport, timeout_ms: int, kill: Callable[[], None],
                      after_exit: Callable[[], None] | None = None) -> dict:
    """Wait for an exec's command (killed with `kill` after `timeout_ms`, or when the request is cancelled), then
    its output; the exec result, with exit code 124 when it timed out."""
    timed_out = False
    try:
        try:
            returncode = await asyncio.wait_for(asyncio.shield(proto.exited), timeout_ms / 1000)
        except asyncio.TimeoutError:
            timed_out = True
            kill()
            returncode = await proto.exited
        if after_exit is not None:
            after_exit()
        await proto.settle(1.0)
    finally:
        if not proto.exited.done():  # the request was cancelled: leave nothing running
            kill()
        transport.close()
    stdout, stderr = proto.output()
    if timed_out:
        stderr += f"exec: timed out after {timeout_ms} ms, killed\n"
        return {"stdout": stdout, "stderr": stderr, "exit_code": 124}
    from valyent_cli.local.procs import exit_code_of

    return {"stdout": stdout, "stderr": stderr, "exit_code": exit_code_of(returncode)}


class Driver:
    """Interface (the process driver and the container driver implement it)."""

    name = "?"
    #: what isolates machines: "namespaces" or "none" (process driver), "container"
    isolation = "container"
    isolation_problem: str | None = None
    #: a create answers before `prepare` and `spawn` run (engine work: pulling an image, creating a container)
    prepares_in_background = False

    def create_notice(self, config: dict) -> str | None:
        """Said once on stderr by `machines create` (the server sends it as a Valyent-Notice header)."""
        return None

    def check_user(self, config: dict) -> str | None:
        """Why `init.user` cannot be honoured (a 400 at create), or None."""
        return None

    async def fs_mounts(self, namespace: str, config: dict) -> list:
        """Mounts the fs API must resolve itself (`isolation.Mount`s for `isolation.view`): what the machine sees
        mounted over its root."""
        return []

    async def prepare(self, machine_id: str, config: dict, env: dict[str, str], ports: list[int],
                      progress: Callable[[str], None], namespace: str = "default") -> None:
        """Make the machine runnable (its directory; its image and container). Raises PrepareFailed."""

    async def spawn(self, machine_id: str, config: dict, env: dict[str, str], on_lines: LineSink,
                    namespace: str = "default") -> Instance:
        """Start the machine's main process. Raises StartFailed."""
        raise NotImplementedError

    async def exec(self, machine_id: str, config: dict, env: dict[str, str], cmd: list[str], timeout_ms: int,
                   namespace: str = "default") -> dict:
        raise NotImplementedError

    async def fs_root(self, machine_id: str) -> Path:
        """The host directory that is the machine's `/` for fs calls."""
        raise NotImplementedError

    def upload_dir(self, machine_id: str, root: Path) -> Path:
        """Where an upload is spooled: on the same filesystem as `root`, so that it lands with one rename."""
        return root.parent / "uploads"

    async def endpoint(self, machine_id: str, port: int,
                       peers: frozenset[str] = frozenset()) -> tuple[str, int] | None:
        """Where a gateway reaches the machine's `port` from the host (loopback), or None. ``peers``: the other
        machines of its fleet, which may listen on the same port beside it (SO_REUSEPORT, as a deploy's old and new
        releases do on the process driver)."""
        return ("127.0.0.1", port)

    async def remove(self, machine_id: str) -> None:
        """Delete everything the machine left (its files, its container)."""

    async def reconcile(self, keep: set[str]) -> None:
        """After the previous server stopped or died: stop what it left running; forget machines not in `keep`."""

    async def shutdown(self) -> None:
        """The server stops: nothing of this sandbox may keep running."""

    def describe(self) -> dict:
        return {"driver": self.name}
