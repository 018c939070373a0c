"""Gateways that answer: each gateway of the sandbox listens on a loopback port of its own (its `url`) and proxies
HTTP to its fleet's running machines that have their gateway enabled, on the gateway's target port.

An HTTP/1.1 reverse proxy (h11 on both sides): each request goes to the next machine (round robin, also on a
kept-alive connection), with `X-Forwarded-For`, `X-Forwarded-Host` and `X-Forwarded-Proto` added; bodies are
streamed both ways as they come (a large upload or download, server-sent events), never held. A request that asks
for an `Upgrade` (websockets) gets a byte tunnel to one machine for the rest of its connection. When no machine is
up, or none accepts the connection, the client gets a `502 Bad Gateway` saying so. Everything stays on 127.0.0.1:
the gateway listens there whatever the sandbox's --host, and machines are reached through their driver's loopback
endpoint (a process's own port, a container's port published on 127.0.0.1), resolved and kept alive by
`upstreams.py` (which also drains a machine whose gateway is disabled or that is stopping).

What it refuses, as RFC 9112 asks: a request with both Content-Length and Transfer-Encoding (400), one that is not
HTTP (400), a head over MAX_HEAD (431); each answered, then the connection closes. A machine silent for
`upstream_timeout()` seconds gets the client a 504.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket

log = logging.getLogger("valyent.local")

HOST = "127.0.0.1"
CHUNK = 256 * 1024
#: how long a machine may stay silent (before its answer's head, and between two parts of its body) before the
#: gateway gives up: 504 Gateway Timeout when nothing was answered yet, else the connection is cut
UPSTREAM_TIMEOUT = 60.0
#: the largest request head (request line and headers) a gateway reads: 431 beyond
MAX_HEAD = 32 * 1024


def gateway_url(port: int | None) -> str | None:
    return f"http://{HOST}:{port}" if port else None


class GatewayProxy:
    def __init__(self, store, supervisor):
        from valyent_cli.local.upstreams import Upstreams

        self.store = store
        self.supervisor = supervisor
        self.servers: dict[str, asyncio.base_events.Server] = {}
        self.gateways: dict[str, dict] = {}  # id -> the gateway, read once when its listener opens
        self.conns: set[asyncio.Task] = set()
        from valyent_cli.local.listeners import Guard

        self.guard = Guard("the gateways")  # a head timeout and a connection cap (local/listeners.py)
        self.upstreams = Upstreams(store, supervisor)
        self.timeout = upstream_timeout()
        supervisor.watchers.append(self.upstreams.machine_changed)

    def machine_changed(self, machine_id: str) -> None:
        """A machine's gateway switch changed (its lifecycle events come through the supervisor's watchers)."""
        self.upstreams.machine_changed(machine_id)

    async def start_all(self) -> None:
        """Listen for every gateway in the database (after a restart, on its former port when it is free)."""
        for gw in self.store.all_gateways():
            await self.open(gw["id"], gw.get("local_port"))

    async def open(self, gateway_id: str, port: int | None = None) -> int:
        if gateway_id in self.servers:
            return self.servers[gateway_id].sockets[0].getsockname()[1]
        gw = self.store.gateway_by_id(gateway_id)
        if gw is not None:
            self.gateways[gateway_id] = gw
        sock = _bind(port)
        server = await asyncio.start_server(lambda r, w: self._serve(gateway_id, r, w), sock=sock)
        self.servers[gateway_id] = server
        bound = sock.getsockname()[1]
        if bound != port:
            self.store.set_gateway_port(gateway_id, bound)
        return bound

    async def close(self, gateway_id: str) -> None:
        self.gateways.pop(gateway_id, None)
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
        self.upstreams.close_all()

    # -- one connection -----------------------------------------------------------------------------------
    async def _serve(self, gateway_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from valyent_cli.local.listeners import BUSY_503

        sock = writer.get_extra_info("socket")
        if sock is not None:  # answers leave at once (Nagle's wait for an ACK would add ~40 ms to kept-alive ones)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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

        client = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        peer = (writer.get_extra_info("peername") or ("127.0.0.1",))[0]
        try:
            while True:
                try:
                    request = await self._request_head(client, reader)
                except h11.RemoteProtocolError as exc:  # not HTTP, or a head too large: say so, then close
                    if client.our_state is h11.IDLE and not reader.at_eof():
                        await _refuse(writer, exc.error_status_hint, f"malformed request: {exc}")
                    return
                if not isinstance(request, h11.Request):
                    return  # the client closed
                problem = _request_problem(request)
                if problem:
                    await _refuse(writer, *problem)
                    return
                gw = self.gateways.get(gateway_id)
                if gw is None:
                    await _bad_gateway(client, writer, "this gateway was deleted")
                    return
                if _header(request, b"upgrade"):
                    upstream = await self.upstreams.connect(gw, fresh=True)
                    if upstream is not None:
                        try:
                            await _tunnel(client, request, reader, writer, upstream.reader, upstream.writer, peer)
                        finally:
                            upstream.close()
                        return
                    ok = None
                else:
                    ok = await self._exchange(gw, client, request, reader, writer, peer)
                if ok is None:  # no machine took it
                    await _bad_gateway(client, writer, _no_machine(gw))
                    if not await _drain_request(client, reader):
                        return
                elif not ok:
                    return
                if client.our_state is not h11.DONE or client.their_state is not h11.DONE:
                    return
                client.start_next_cycle()
        except (ConnectionError, OSError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _exchange(self, gw, client, request, reader, writer, peer: str) -> bool | None:
        """Forward one request and stream its answer back: True when the client's connection can go on, False
        when it must end, None when no machine took the request (nothing was answered yet)."""
        import h11

        has_body = _header(request, b"transfer-encoding") is not None or (
            _header(request, b"content-length") not in (None, b"0"))
        head = h11.Request(method=request.method, target=request.target, headers=_forwarded_headers(request, peer))
        for attempt in range(2):
            conn = await self.upstreams.connect(gw, has_body=has_body, fresh=attempt > 0)
            if conn is None:
                return None
            up = conn.http
            try:
                if client.they_are_waiting_for_100_continue:
                    writer.write(client.send(h11.InformationalResponse(status_code=100, headers=[])))
                if not await _send_body(client, reader, up, conn.writer, up.send(head)):
                    conn.close()
                    return False  # the client went away mid-request
                response = await _response_head(up, conn.reader, self.timeout)
            except asyncio.TimeoutError:
                conn.close()
                await _answer(client, writer, 504, b"Gateway Timeout",
                              f"gateway {gw['name']}: the machine did not answer within {self.timeout:g} s")
                return False
            except (ConnectionError, OSError, h11.RemoteProtocolError) as exc:
                conn.close()
                if conn.reused and not has_body and attempt == 0:
                    continue  # the machine had closed the kept connection: once more, on a new one
                if isinstance(exc, h11.RemoteProtocolError):
                    await _bad_gateway(client, writer, f"the machine's answer is not valid HTTP: {exc}")
                else:
                    await _bad_gateway(client, writer, "the machine closed the connection without answering")
                return False
            if response is None:  # closed before answering
                conn.close()
                if conn.reused and not has_body and attempt == 0:
                    continue
                await _bad_gateway(client, writer, "the machine closed the connection without answering")
                return False
            ok = await _send_response(client, writer, up, conn.reader, response, self.timeout)
            if ok:
                self.upstreams.release(conn)
            else:
                conn.close()
            return ok
        return False


def upstream_timeout() -> float:
    """How long a gateway waits for a machine's answer (its head, then each part of its body) before it answers
    504: VALYENT_LOCAL_GATEWAY_TIMEOUT seconds, default UPSTREAM_TIMEOUT."""
    raw = os.environ.get("VALYENT_LOCAL_GATEWAY_TIMEOUT", "")
    try:
        value = float(raw)
    except ValueError:
        return UPSTREAM_TIMEOUT
    return value if value > 0 else UPSTREAM_TIMEOUT


def _no_machine(gw: dict) -> str:
    return (f"gateway {gw['name']}: no running machine of its fleet with its gateway enabled accepts connections on "
            f"port {gw['target_port']} (valyent machines create --enable-gateway, or valyent machines enable-gateway "
            "ID)")


def _request_problem(request) -> tuple[int, str] | None:
    """Why a request cannot be forwarded as it is (RFC 9112): (status, message), or None."""
    if _header(request, b"transfer-encoding") is not None and _header(request, b"content-length") is not None:
        return 400, ("a request cannot have both Content-Length and Transfer-Encoding (RFC 9112, section 6.1): "
                     "it would be read two ways")
    # h11 limits a head that arrives in parts; one that arrives whole is measured here
    if len(request.target) + sum(len(k) + len(v) + 4 for k, v in request.headers) > MAX_HEAD:
        return 431, f"malformed request: its head is over {MAX_HEAD} bytes"
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


async def _send_body(client, reader, up, up_writer, head: bytes) -> bool:
    """The request (its head, already encoded), then its body, to the machine as it comes (its end only, when it
    was read already). False when the client went away before its end."""
    import h11

    pending = [head]
    while client.their_state is not h11.DONE:  # DONE: a retry of a request without a body
        event = client.next_event()
        if event is h11.NEED_DATA:
            if pending:
                up_writer.writelines(pending)
                pending = []
            client.receive_data(await reader.read(CHUNK))
            continue
        if isinstance(event, h11.Data):
            pending += up.send_with_data_passthrough(event)
            up_writer.writelines(pending)
            pending = []
            await up_writer.drain()
        elif isinstance(event, h11.EndOfMessage):
            break
        else:
            return False
    pending.append(up.send(h11.EndOfMessage()))
    up_writer.writelines(pending)
    await up_writer.drain()
    return True


async def _response_head(up, up_reader, timeout: float):
    """The machine's response head (None when it closed first); asyncio.TimeoutError when it says nothing within
    `timeout`."""
    import h11

    async with asyncio.timeout(timeout):
        while True:
            event = await _next_event(up, up_reader)
            if isinstance(event, h11.InformationalResponse):
                continue  # 100 Continue was answered already
            return event if isinstance(event, h11.Response) else None


async def _send_response(client, writer, up, up_reader, response, timeout: float) -> bool:
    """The answer, to the client as it comes. False when the client's connection must end (the machine closed or
    went silent mid-answer: the client sees a cut answer, as it would from the machine)."""
    import h11

    headers = [(k, v) for k, v in response.headers if k.lower() not in HOP_BY_HOP]
    # the head waits for the first part of the body (or its end), so that a small answer leaves in one segment
    pending = [client.send(h11.Response(status_code=response.status_code, headers=headers, reason=response.reason))]
    try:
        while True:
            event = up.next_event()
            if event is h11.NEED_DATA:
                if pending:
                    writer.writelines(pending)
                    pending = []
                async with asyncio.timeout(timeout):  # no task per read, as wait_for makes
                    data = await up_reader.read(CHUNK)
                up.receive_data(data)
                continue
            if isinstance(event, h11.Data):
                pending += client.send_with_data_passthrough(event)
                writer.writelines(pending)
                pending = []
                await writer.drain()
            elif isinstance(event, h11.EndOfMessage):
                pending.append(client.send(h11.EndOfMessage()))
                writer.writelines(pending)
                await writer.drain()
                return True
            else:
                if pending:
                    writer.writelines(pending)
                return False
    except (asyncio.TimeoutError, h11.RemoteProtocolError):
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

    while client.their_state is not h11.DONE:
        event = await _next_event(client, reader)
        if isinstance(event, h11.EndOfMessage):
            return True
        if not isinstance(event, h11.Data):
            return False
    return True


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
    await _answer(client, writer, 502, b"Bad Gateway", message)


async def _answer(client, writer: asyncio.StreamWriter, status: int, reason: bytes, message: str) -> None:
    """A plain-text answer of the gateway's own, in the client's HTTP cycle."""
    import h11

    body = (message + "\n").encode()
    writer.write(client.send(h11.Response(status_code=status, reason=reason, headers=[
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())])))
    writer.write(client.send(h11.Data(data=body)))
    writer.write(client.send(h11.EndOfMessage()))
    with contextlib.suppress(Exception):
        await writer.drain()


async def _refuse(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    """An answer to a request that could not be read as HTTP (or must not be): written as is, then the connection
    ends, since where the next request would begin is unknown."""
    body = (message.replace("\r", " ").replace("\n", " ") + "\n").encode("ascii", "replace")
    reason = {400: "Bad Request", 431: "Request Header Fields Too Large"}.get(status, "Bad Request")
    writer.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                 b"connection: close\r\n\r\n%s" % (status, reason.encode(), len(body), body))
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
