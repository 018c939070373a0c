"""Gateways that answer: each gateway of the sandbox listens on a loopback port of its own (its `url`) and
forwards every connection to one of its fleet's running machines that have their gateway enabled, on the
gateway's target port.

A streaming proxy per connection: bytes go both ways as they come (responses, uploads, server-sent events and
websockets alike), and the next connection goes to the next machine (round robin). When no machine is up, or none
accepts the connection, the client gets a `502 Bad Gateway` saying so. Everything stays on 127.0.0.1: the gateway
listens there whatever the sandbox's --host, and machines are reached through their driver's loopback endpoint
(a process's own port, a container's port published on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket

log = logging.getLogger("valyent.local")

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 3.0
CHUNK = 64 * 1024


def gateway_url(port: int | None) -> str | None:
    return f"http://{HOST}:{port}" if port else None


class GatewayProxy:
    def __init__(self, store, supervisor):
        self.store = store
        self.supervisor = supervisor
        self.servers: dict[str, asyncio.base_events.Server] = {}
        self.turn: dict[str, int] = {}
        self.conns: set[asyncio.Task] = set()

    async def start_all(self) -> None:
        """Listen for every gateway in the database (after a restart, on its former port when it is free)."""
        for gw in self.store.all_gateways():
            await self.open(gw["id"], gw.get("local_port"))

    async def open(self, gateway_id: str, port: int | None = None) -> int:
        if gateway_id in self.servers:
            return self.servers[gateway_id].sockets[0].getsockname()[1]
        sock = _bind(port)
        server = await asyncio.start_server(lambda r, w: self._serve(gateway_id, r, w), sock=sock)
        self.servers[gateway_id] = server
        bound = sock.getsockname()[1]
        if bound != port:
            self.store.set_gateway_port(gateway_id, bound)
        return bound

    async def close(self, gateway_id: str) -> None:
        server = self.servers.pop(gateway_id, None)
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)

    async def sync(self) -> None:
        """Close the listeners of gateways that are gone (a fleet's deletion removes its gateways)."""
        live = {gw["id"] for gw in self.store.all_gateways()}
        for gid in list(self.servers):
            if gid not in live:
                await self.close(gid)

    async def shutdown(self) -> None:
        for gid in list(self.servers):
            await self.close(gid)
        for task in list(self.conns):
            task.cancel()
        if self.conns:
            await asyncio.wait(list(self.conns), timeout=2)

    # -- one connection -----------------------------------------------------------------------------------
    def _serve(self, gateway_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        if task is not None:
            self.conns.add(task)
            task.add_done_callback(self.conns.discard)
        return self._proxy(gateway_id, reader, writer)

    async def _proxy(self, gateway_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            gw = self.store.gateway_by_id(gateway_id)
            if gw is None:
                await _bad_gateway(reader, writer, "this gateway was deleted")
                return
            upstream = await self._connect(gw)
            if upstream is None:
                await _bad_gateway(
                    reader, writer,
                    f"gateway {gw['name']}: no running machine of its fleet with its gateway enabled accepts "
                    f"connections on port {gw['target_port']} (valyent machines create --enable-gateway, or "
                    f"valyent machines enable-gateway ID)")
                return
            up_reader, up_writer = upstream
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _connect(self, gw: dict):
        machines = self.store.gateway_backends(gw["fleet_id"])
        if not machines:
            return None
        start = self.turn.get(gw["id"], 0)
        self.turn[gw["id"]] = start + 1
        for i in range(len(machines)):
            mid = machines[(start + i) % len(machines)]
            try:
                endpoint = await self.supervisor.driver.endpoint(mid, gw["target_port"])
            except Exception as exc:  # an engine that does not answer: try the next machine
                log.warning("gateway %s: cannot find machine %s's port: %s", gw["id"], mid, exc)
                continue
            if endpoint is None:
                continue
            try:
                return await asyncio.wait_for(asyncio.open_connection(*endpoint), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                continue
        return None


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await src.read(CHUNK)
            if not data:
                break
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if dst.can_write_eof():
                dst.write_eof()


async def _bad_gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: str) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)  # the request head, so the client reads our answer
    body = (message + "\n").encode()
    writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    with contextlib.suppress(Exception):
        await writer.drain()


def _bind(port: int | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port or 0))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or not port:
            sock.close()
            raise
        sock.bind((HOST, 0))  # its former port is taken now: a new one (the gateway's url says which)
    sock.listen(128)
    sock.setblocking(False)
    return sock
