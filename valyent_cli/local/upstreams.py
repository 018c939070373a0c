"""Where a gateway sends a request: its fleet's running machines with their gateway enabled, each machine's address
resolved once, and kept-alive connections to them.

The address of a machine's port is asked of its driver (on podman and docker an engine call) once, when the
gateway first needs it after the machine's state or gateway switch last changed, and kept until the next change:
the supervisor reports every lifecycle event (`machine_changed`), the gateway routes every switch. Concurrent
requests share one resolution. A change also drops the idle connections to that machine, and a connection that was
busy during a change is closed, not kept, when its answer ends: a machine being stopped or having its gateway
disabled finishes what it was sent (drain) and is sent nothing new.

Idle connections are kept per machine and port (at most MAX_IDLE each, for at most IDLE_SECONDS). A kept
connection that the machine closed meanwhile is noticed by the exchange, which retries a request without a body
once on a new connection (proxy.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger("valyent.local")

CONNECT_TIMEOUT = 3.0
IDLE_SECONDS = 30.0
#: a request with a body goes on a kept connection only if it was used this recently (a body cannot be replayed
#: when the machine had closed the connection meanwhile)
FRESH_SECONDS = 2.0
MAX_IDLE = 64
#: what a connection to a machine buffers before it stops reading (a body moves in reads of up to this)
READ_LIMIT = 1024 * 1024


@dataclass(eq=False)
class Upstream:
    """One connection to a machine: its streams, its h11 client state, the machine's epoch when it was opened."""

    machine_id: str
    key: tuple[str, int]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    epoch: int
    http: object = None  # h11.Connection(h11.CLIENT)
    reused: bool = False
    idle_since: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Upstreams:
    def __init__(self, store, supervisor):
        self.store = store
        self.supervisor = supervisor
        self.backends: dict[str, list[str]] = {}  # fleet id -> ids of its running machines, gateway enabled
        self.fleet_of: dict[str, str] = {}  # machine id -> fleet id, for the machines in `backends`
        self.endpoints: dict[tuple[str, int], tuple[str, int]] = {}  # (machine, port) -> (host, port)
        self.resolving: dict[tuple[str, int], asyncio.Task] = {}
        self.idle: dict[tuple[str, int], list[Upstream]] = {}
        self.epoch: dict[str, int] = {}
        self.turn: dict[str, int] = {}

    # -- changes ---------------------------------------------------------------------------------------------------
    def machine_changed(self, machine_id: str) -> None:
        """The machine's state or gateway switch changed: forget what was known of it, and of its fleet's list."""
        self.epoch[machine_id] = self.epoch.get(machine_id, 0) + 1
        fleet = self.fleet_of.pop(machine_id, None)
        if fleet is None:
            self.backends.clear()  # a machine not known yet (created, or just enabled): any fleet may gain it
        else:
            self.backends.pop(fleet, None)
        for key in [k for k in self.endpoints if k[0] == machine_id]:
            del self.endpoints[key]
        for key in [k for k in self.idle if k[0] == machine_id]:
            for conn in self.idle.pop(key):
                conn.close()

    def close_all(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.close()
        self.idle.clear()

    # -- choosing and connecting -----------------------------------------------------------------------------------
    def _machines(self, fleet_id: str) -> list[str]:
        machines = self.backends.get(fleet_id)
        if machines is None:
            machines = self.backends[fleet_id] = self.store.gateway_backends(fleet_id)
            for mid in machines:
                self.fleet_of[mid] = fleet_id
        return machines

    async def _endpoint(self, fleet_id: str, machine_id: str, port: int) -> tuple[str, int] | None:
        key = (machine_id, port)
        found = self.endpoints.get(key)
        if found is not None:
            return found
        task = self.resolving.get(key)
        if task is None:
            task = self.resolving[key] = asyncio.ensure_future(self._resolve(fleet_id, machine_id, port))
            task.add_done_callback(lambda t, key=key: self.resolving.pop(key, None) if self.resolving.get(key) is t
                                   else None)
        return await asyncio.shield(task)  # one request giving up does not end the others' resolution

    async def _resolve(self, fleet_id: str, machine_id: str, port: int) -> tuple[str, int] | None:
        epoch = self.epoch.get(machine_id, 0)
        try:
            # the gateway's fleet, as the caller chose the machine from it (not `fleet_of`, which a change of the
            # machine clears meanwhile: with no peers, the fleet's other listeners on the port would refuse it)
            peers = self.store.fleet_machine_ids(fleet_id) - {machine_id}
            endpoint = await self.supervisor.driver.endpoint(machine_id, port, peers)
        except Exception as exc:  # an engine that does not answer: the caller tries the next machine
            log.warning("gateway: cannot find machine %s's port %s: %s", machine_id, port, exc)
            return None
        if endpoint is not None and self.epoch.get(machine_id, 0) == epoch:
            self.endpoints[(machine_id, port)] = endpoint  # kept until the machine changes (not kept: None)
        return endpoint

    def _take_idle(self, key: tuple[str, int], epoch: int, has_body: bool) -> Upstream | None:
        conns = self.idle.get(key)
        now = time.monotonic()
        while conns:
            conn = conns.pop()
            age = now - conn.idle_since
            if (conn.epoch != epoch or age > IDLE_SECONDS or conn.reader.at_eof() or conn.writer.is_closing()
                    or conn.reader._buffer):  # noqa: SLF001 - bytes nobody asked for: not a clean connection
                conn.close()
                continue
            if has_body and age > FRESH_SECONDS:
                conns.append(conn)  # still good for a request without a body
                return None
            conn.reused = True
            return conn
        return None

    async def connect(self, gw: dict, has_body: bool = False, fresh: bool = False) -> Upstream | None:
        """A connection to the next machine of the gateway's fleet (round robin) that accepts one, or None."""
        import h11

        machines = self._machines(gw["fleet_id"])
        if not machines:
            return None
        start = self.turn.get(gw["id"], 0)
        self.turn[gw["id"]] = start + 1
        port = gw["target_port"]
        for i in range(len(machines)):
            mid = machines[(start + i) % len(machines)]
            epoch = self.epoch.get(mid, 0)
            endpoint = await self._endpoint(gw["fleet_id"], mid, port)
            if endpoint is None:
                continue
            key = (mid, port)
            if not fresh:
                conn = self._take_idle(key, epoch, has_body)
                if conn is not None:
                    return conn
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*endpoint, limit=READ_LIMIT),
                                                        CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                if self.endpoints.get(key) == endpoint:
                    del self.endpoints[key]  # asked again next time (a restarted listener may have moved)
                continue
            return Upstream(mid, key, reader, writer, epoch, h11.Connection(h11.CLIENT))
        return None

    def release(self, conn: Upstream) -> None:
        """An exchange ended cleanly: keep the connection for the next request to the same machine, unless the
        machine changed meanwhile (it drains) or either side wants it closed."""
        import h11

        http = conn.http
        if (conn.epoch != self.epoch.get(conn.machine_id, 0) or http.our_state is not h11.DONE
                or http.their_state is not h11.DONE or conn.writer.is_closing()):
            conn.close()
            return
        http.start_next_cycle()
        conns = self.idle.setdefault(conn.key, [])
        if len(conns) >= MAX_IDLE:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conns.append(conn)
