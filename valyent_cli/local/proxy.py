"""Gateways that answer: each gateway of the sandbox listens on a loopback port of its own (its `url`) and proxies
HTTP to its fleet's running machines that have their gateway enabled, on the gateway's target port.

An HTTP/1.1 reverse proxy (h11 on both sides): each request goes to the next machine (round robin, also on a
kept-alive connection), with `X-Forwarded-For`, `X-Forwarded-Host` and `X-Forwarded-Proto` added; bodies are
streamed both ways as they come (a large upload or download, server-sent events), never held. A request that asks
for an `Upgrade` (websockets) gets a byte tunnel to one machine for the rest of its connection. When no machine is
up, or none accepts the connection, the client gets a `502 Bad Gateway` saying so. Everything stays on 127.0.0.1:
the gateway listens there whatever the sandbox's --host, and machines are reached through their driver's loopback
endpoint (a process's own port, a container's port published on 127.0.0.1).
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
        from valyent_cli.local.listeners import Guard

        self.guard = Guard("the gateways")  # a head timeout and a connection cap (local/listeners.py)

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
    async def _serve(self, gateway_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from valyent_cli.local.listeners import BUSY_503

        task = asyncio.current_task()  # kept, so that shutdown ends open (kept-alive) connections
        if not self.guard.admit():
            writer.write(BUSY_503)
            writer.close()
            return
        if task is not None:
            self.conns.add(task)
            task.add_done_callback(self.conns.discard)
        try:
            await self._proxy(gateway_id, reader, writer)
        finally:
            self.guard.gone(task)

    async def _request_head(self, client, reader: asyncio.StreamReader):
        """The next request's head, within the head timeout (None when it does not come in time); meanwhile the
        connection is idle: the first closed when the gateways reach their connection cap."""
        from valyent_cli.local.listeners import header_timeout

        task = asyncio.current_task()
        self.guard.idle(task, task.cancel)
        try:
            return await asyncio.wait_for(_next_event(client, reader), header_timeout())
        except asyncio.TimeoutError:
            return None
        finally:
            self.guard.busy(task)

    async def _proxy(self, gateway_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11

        client = h11.Connection(h11.SERVER)
        peer = (writer.get_extra_info("peername") or ("127.0.0.1",))[0]
        try:
            while True:
                request = await self._request_head(client, reader)
                if not isinstance(request, h11.Request):
                    return  # the client closed (or sent garbage): nothing to answer
                gw = self.store.gateway_by_id(gateway_id)
                if gw is None:
                    await _bad_gateway(client, writer, "this gateway was deleted")
                    return
                upstream = await self._connect(gw)
                if upstream is None:
                    await _bad_gateway(
                        client, writer,
                        f"gateway {gw['name']}: no running machine of its fleet with its gateway enabled accepts "
                        f"connections on port {gw['target_port']} (valyent machines create --enable-gateway, or "
                        f"valyent machines enable-gateway ID)")
                    if not await _drain_request(client, reader):
                        return
                    if client.our_state is h11.MUST_CLOSE or client.their_state is h11.MUST_CLOSE:
                        return
                    client.start_next_cycle()
                    continue
                up_reader, up_writer = upstream
                try:
                    if _header(request, b"upgrade"):
                        await _tunnel(client, request, reader, writer, up_reader, up_writer, peer)
                        return
                    ok = await _exchange(client, request, reader, writer, up_reader, up_writer, peer)
                finally:
                    up_writer.close()
                if not ok or client.our_state is not h11.DONE or client.their_state is not h11.DONE:
                    return
                client.start_next_cycle()
        except (ConnectionError, OSError, h11.ProtocolError, asyncio.IncompleteReadError):
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


HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
              b"te", b"trailer", b"upgrade"}


def _header(message, name: bytes) -> bytes | None:
    for key, value in message.headers:
        if key.lower() == name:
            return value
    return None


def _forwarded_headers(request, peer: str, keep_upgrade: bool = False) -> list[tuple[bytes, bytes]]:
    headers = [(k, v) for k, v in request.headers
               if k.lower() not in HOP_BY_HOP or (keep_upgrade and k.lower() in (b"connection", b"upgrade"))]
    prior = _header(request, b"x-forwarded-for")
    headers = [(k, v) for k, v in headers if k.lower() != b"x-forwarded-for"]
    headers.append((b"x-forwarded-for", (prior + b", " if prior else b"") + peer.encode()))
    if _header(request, b"host") and not _header(request, b"x-forwarded-host"):
        headers.append((b"x-forwarded-host", _header(request, b"host")))
    if not _header(request, b"x-forwarded-proto"):
        headers.append((b"x-forwarded-proto", b"http"))
    return headers


async def _next_event(conn, reader: asyncio.StreamReader):
    """The next h11 event, reading from the socket as needed (h11.NEED_DATA)."""
    import h11

    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await reader.read(CHUNK)
        conn.receive_data(data)  # b"": the peer closed


async def _exchange(client, request, reader, writer, up_reader, up_writer, peer: str) -> bool:
    """Forward one request and stream its answer back. False when the client's connection must end."""
    import h11

    upstream = h11.Connection(h11.CLIENT)
    up_writer.write(upstream.send(h11.Request(method=request.method, target=request.target,
                                              headers=_forwarded_headers(request, peer))))
    if client.they_are_waiting_for_100_continue:
        writer.write(client.send(h11.InformationalResponse(status_code=100, headers=[])))
    while True:  # the request body, as it comes
        event = await _next_event(client, reader)
        if isinstance(event, h11.Data):
            up_writer.write(upstream.send(h11.Data(data=event.data)))
            await up_writer.drain()
        elif isinstance(event, h11.EndOfMessage):
            up_writer.write(upstream.send(h11.EndOfMessage()))
            await up_writer.drain()
            break
        else:
            return False  # the client went away mid-request
    try:
        while True:  # the answer, as it comes
            event = await _next_event(upstream, up_reader)
            if isinstance(event, h11.InformationalResponse):
                continue  # 100 Continue was answered already
            if isinstance(event, h11.Response):
                headers = [(k, v) for k, v in event.headers if k.lower() not in HOP_BY_HOP]
                writer.write(client.send(h11.Response(status_code=event.status_code, headers=headers,
                                                      reason=event.reason)))
            elif isinstance(event, h11.Data):
                writer.write(client.send(h11.Data(data=event.data)))
                await writer.drain()
            elif isinstance(event, h11.EndOfMessage):
                writer.write(client.send(h11.EndOfMessage()))
                await writer.drain()
                return True
            else:  # the machine closed before it answered in full
                if client.our_state is h11.SEND_RESPONSE:
                    await _bad_gateway(client, writer, "the machine closed the connection without answering")
                return False
    except h11.RemoteProtocolError as exc:
        if client.our_state is h11.SEND_RESPONSE:
            await _bad_gateway(client, writer, f"the machine's answer is not valid HTTP: {exc}")
        return False


async def _tunnel(client, request, reader, writer, up_reader, up_writer, peer: str) -> None:
    """An Upgrade (websocket) request: send its head on, then relay bytes both ways until either side closes."""
    import h11

    head = h11.Connection(h11.CLIENT).send(h11.Request(
        method=request.method, target=request.target, headers=_forwarded_headers(request, peer, keep_upgrade=True)))
    up_writer.write(head + client.trailing_data[0])
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _drain_request(client, reader) -> bool:
    """Read (and drop) the rest of a request that was answered without being forwarded."""
    import h11

    while True:
        event = await _next_event(client, reader)
        if isinstance(event, h11.EndOfMessage):
            return True
        if not isinstance(event, h11.Data):
            return False


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


async def _bad_gateway(client, writer: asyncio.StreamWriter, message: str) -> None:
    import h11

    body = (message + "\n").encode()
    writer.write(client.send(h11.Response(status_code=502, reason=b"Bad Gateway", headers=[
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())])))
    writer.write(client.send(h11.Data(data=body)))
    writer.write(client.send(h11.EndOfMessage()))
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
