"""The container engine's event stream, for the container driver: one `<engine> events` process per sandbox,
filtered by the sandbox's label, tells when a container started and when it died, with its exit code, as the
engine sees it (podman's JSON lines: `Name`, `Status`, `ContainerExitCode`, `Time`; docker's: `Actor.Attributes`
`name` and `exitCode`, `status`/`Action`, `timeNano`).

A waiter is registered before the command that causes the event (`expect`), and only events stamped after its
registration answer it, so a late event of an earlier run cannot. The stream starts from the driver's creation
(`--since`): an event that happened before the engine had subscribed is replayed, not lost. Without an event stream (the engine refuses,
or it ends), `alive` is False and callers fall back to asking the engine (`inspect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import time
from datetime import datetime

log = logging.getLogger("valyent.local")

#: how engines name the events the driver waits for
STATUSES = {"start": "start", "died": "died", "die": "died"}


def _stamp(event: dict) -> float | None:
    """The event's time in seconds since the epoch, or None when it has none that parses."""
    nano = event.get("timeNano")
    if isinstance(nano, int):
        return nano / 1e9
    raw = event.get("Time") or event.get("time")
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        head, _, frac = raw.rstrip("Z").partition(".")
        try:
            base = datetime.fromisoformat(head + "+00:00").timestamp()
        except ValueError:
            return None
        return base + (float("0." + frac[:9]) if frac.isdigit() else 0.0)
    return None


class EngineEvents:
    def __init__(self, engine: str, label: str, loop: asyncio.AbstractEventLoop):
        self.engine = engine
        self.label = label
        self.loop = loop
        self.waiters: dict[str, list[tuple[str, float, asyncio.Future]]] = {}
        self.alive = False
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task | None = None
        self.since = time.time() - 1

    def start(self) -> None:
        if self.task is None:
            self.task = self.loop.create_task(self._run())

    def expect(self, name: str, status: str) -> asyncio.Future:
        """A future of the next `status` event ("start" or "died") of container `name`: its exit code (None when
        the engine gave none)."""
        fut = self.loop.create_future()
        self.waiters.setdefault(name, []).append((status, time.time() - 0.001, fut))
        return fut

    def forget(self, name: str, fut: asyncio.Future) -> None:
        waiting = self.waiters.get(name, [])
        self.waiters[name] = [w for w in waiting if w[2] is not fut]
        if not self.waiters[name]:
            del self.waiters[name]
        if not fut.done():
            fut.cancel()

    async def _run(self) -> None:
        from valyent_cli.local import procs

        # --since: what happened before the engine had subscribed is replayed, so no start can be missed;
        # it dies with the server, even after a `kill -9` of the server
        args, preexec = procs.spawn_args([self.engine, "events", "--since", str(int(self.since)), "--format",
                                          "{{json .}}", "--filter", "type=container", "--filter",
                                          f"label={self.label}"])
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                preexec_fn=preexec, limit=1 << 20)
        except OSError as exc:
            log.warning("%s events: %s (the container driver asks the engine instead)", self.engine, exc)
            return
        self.alive = True
        assert self.proc.stdout is not None
        try:
            async for raw in self.proc.stdout:
                self._dispatch(raw)
        except (ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            self.alive = False

    def _dispatch(self, raw: bytes) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        attrs = event.get("Attributes") or (event.get("Actor") or {}).get("Attributes") or {}
        name = event.get("Name") or attrs.get("name")
        status = STATUSES.get(str(event.get("Status") or event.get("status") or event.get("Action") or ""))
        if not name or status is None or name not in self.waiters:
            return
        when = _stamp(event)
        # podman leaves ContainerExitCode out when it is 0 (Go's omitempty); docker always sends exitCode
        code = event.get("ContainerExitCode", attrs.get("exitCode", 0 if status == "died" else None))
        try:
            code = int(code) if code is not None else None
        except (TypeError, ValueError):
            code = None
        keep = []
        for wanted, since, fut in self.waiters[name]:
            if wanted == status and (when is None or when >= since) and not fut.done():
                fut.set_result(code)
            elif not fut.done():
                keep.append((wanted, since, fut))
        if keep:
            self.waiters[name] = keep
        else:
            del self.waiters[name]

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 5)
        if self.task is not None:
            self.task.cancel()
