"""A small HTTP server on loopback that misbehaves on purpose, for tests of the API client.

It speaks HTTP/1.1 over raw sockets, so that it can fail the way real networks and proxies fail: hang after
reading a request, reset a connection mid-answer, cut a chunked stream mid-line, stall a stream.

    server = FaultServer()                      # listening on 127.0.0.1:<free port>, in a background thread
    server.queue(Reply(503), Reply(200, json={"id": "f1"}))
    ... calls against server.url ...
    server.requests[0].method, .path, .query, .params, .headers, .body
    server.close()

Each connection answers one request (``Connection: close``). What it answers is, in order: ``handler(request)``
when a handler is set and returns an action, else the next queued action, else ``default``.
Use the ``fault_server`` fixture (registered by tests/conftest.py) to get one that is shut down after the
test.
"""

from __future__ import annotations

import collections
import json as jsonlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest

from support.env import cli_environ, free_port  # noqa: F401 - free_port: a port nothing listens on

REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout", 409: "Conflict",
    418: "I'm a teapot", 422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


# -- what the server records --------------------------------------------------------------------------------------
@dataclass
class Request:
    method: str
    target: str  # the request target as sent: path and query, still percent-encoded
    headers: dict[str, str]  # lower-cased names
    body: bytes
    chunked: bool = False  # the body came with Transfer-Encoding: chunked
    received_at: float = 0.0  # time.monotonic() when the request was read
    closed_by_client: bool = False  # the client closed the connection while a Hang or a stalled Stream held it

    @property
    def path(self) -> str:
        """The raw path, still percent-encoded."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        """The raw query string."""
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[-1] if values else None

    @property
    def segments(self) -> list[str]:
        """The decoded path segments: a name with a `/` in it stays one segment."""
        return [unquote(s) for s in self.path.split("/")[1:]]

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    def form(self) -> dict[str, tuple[str | None, bytes]]:
        """A multipart/form-data body as {field: (filename, bytes)}."""
        head = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.body)
        out = {}
        for part in message.iter_parts():
            out[part.get_param("name", header="content-disposition")] = (
                part.get_filename(),
                part.get_payload(decode=True),
            )
        return out


# -- what the server can do ---------------------------------------------------------------------------------------
@dataclass
class Reply:
    """An answer. ``json`` sets the body and its Content-Type. ``truncate`` sends only that many body bytes
    (with the full Content-Length announced), then ends the connection (``end``: "close" or "reset")."""

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    delay: float = 0.0
    truncate: int | None = None
    end: str = "close"


@dataclass
class Stream:
    """A chunked answer sent piece by piece, then ended by ``end``:

    * ``close``: the terminating chunk, then the connection closed (a clean end of stream);
    * ``cut``: the connection closed without the terminating chunk (a broken stream);
    * ``reset``: a TCP reset;
    * ``stall``: nothing more is sent, the connection held open until the server shuts down or the client closes
      it (``Request.closed_by_client``).
    """

    chunks: list[bytes] = field(default_factory=list)
    end: str = "close"
    status: int = 200
    content_type: str = "application/x-ndjson"
    headers: dict[str, str] = field(default_factory=dict)
    chunk_delay: float = 0.0


@dataclass
class Hang:
    """Read the request, then never answer (until the server shuts down, or the client closes the connection:
    ``Request.closed_by_client``)."""


@dataclass
class Reset:
    """Send ``partial`` raw bytes (maybe none), then reset the connection (RST: SO_LINGER 0)."""

    partial: bytes = b""
    delay: float = 0.0


@dataclass
class Close:
    """Close the connection without answering."""


Action = Reply | Stream | Hang | Reset | Close


def ndjson(*entries: dict[str, Any]) -> bytes:
    return b"".join(jsonlib.dumps(e).encode() + b"\n" for e in entries)


# -- the server ---------------------------------------------------------------------------------------------------
class FaultServer:
    def __init__(self, port: int = 0, *, default: Action | None = None) -> None:
        self.requests: list[Request] = []
        self.handler: Callable[[Request], Action | None] | None = None
        self.default: Action = default or Reply(599, "fault server: nothing queued for this request")
        self._queue: collections.deque[Action] = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(128)
        self._sock.settimeout(0.25)  # a fallback: close() wakes accept() itself
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._accepter = threading.Thread(target=self._accept_loop, name=f"faultserver:{self.port}", daemon=True)
        self._accepter.start()

    # scripting
    def queue(self, *actions: Action) -> FaultServer:
        with self._lock:
            self._queue.extend(actions)
        return self

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(
                1 for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)
            )

    @property
    def last(self) -> Request:
        return self.requests[-1]

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.005)

    # lifecycle
    def close(self) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() at once (Linux)
        except OSError:
            pass
        self._accepter.join(timeout=2)
        self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            _close_quietly(conn)
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # internals
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            request = _read_request(conn)
            if request is None:
                return
            request.received_at = time.monotonic()
            with self._lock:
                self.requests.append(request)
            action = self.handler(request) if self.handler is not None else None
            if action is None:
                with self._lock:
                    action = self._queue.popleft() if self._queue else self.default
            self._act(conn, action, request)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            _close_quietly(conn)

    def _act(self, conn: socket.socket, action: Action, request: Request) -> None:
        if isinstance(action, Hang):
            self._hold(conn, request)
        elif isinstance(action, Close):
            return
        elif isinstance(action, Reset):
            if action.delay:
                self._stop.wait(action.delay)
            if action.partial:
                conn.sendall(action.partial)
            _reset(conn)
        elif isinstance(action, Reply):
            self._reply(conn, action)
        elif isinstance(action, Stream):
            self._stream(conn, action, request)
        else:  # pragma: no cover
            raise TypeError(action)

    def _reply(self, conn: socket.socket, reply: Reply) -> None:
        if reply.delay and self._stop.wait(reply.delay):
            return
        body = reply.body.encode() if isinstance(reply.body, str) else reply.body
        headers = {}
        if reply.json is not None:
            body = jsonlib.dumps(reply.json).encode()
            headers["Content-Type"] = "application/json"
        headers.update(reply.headers)
        headers.setdefault("Content-Length", str(len(body)))
        conn.sendall(_head(reply.status, headers))
        if reply.truncate is None:
            conn.sendall(body)
            return
        conn.sendall(body[: reply.truncate])
        time.sleep(0.05)  # let the client read what was sent before the connection ends
        if reply.end == "reset":
            _reset(conn)

    def _hold(self, conn: socket.socket, request: Request) -> None:
        """Send nothing more until the server shuts down or the client closes the connection (then noted)."""
        conn.settimeout(0.05)
        while not self._stop.is_set():
            try:
                data = conn.recv(4096)
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                data = b""
            if not data:
                request.closed_by_client = True
                return

    def _stream(self, conn: socket.socket, stream: Stream, request: Request) -> None:
        headers = {"Content-Type": stream.content_type, "Transfer-Encoding": "chunked", **stream.headers}
        conn.sendall(_head(stream.status, headers))
        for chunk in stream.chunks:
            if stream.chunk_delay and self._stop.wait(stream.chunk_delay):
                return
            if chunk:
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if stream.end == "close":
            conn.sendall(b"0\r\n\r\n")
        elif stream.end == "cut":
            time.sleep(0.02)
        elif stream.end == "reset":
            time.sleep(0.02)
            _reset(conn)
        elif stream.end == "stall":
            self._hold(conn, request)
        else:  # pragma: no cover
            raise ValueError(stream.end)


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _close_quietly(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass


class _Reader:
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buf = b""

    def _fill(self) -> bool:
        data = self.conn.recv(256 * 1024)
        if not data:
            return False
        self.buf += data
        return True

    def until(self, marker: bytes) -> bytes | None:
        while marker not in self.buf:
            if not self._fill():
                return None
        head, self.buf = self.buf.split(marker, 1)
        return head

    def exactly(self, n: int) -> bytes:
        parts = [self.buf[:n]]
        got = len(parts[0])
        self.buf = self.buf[n:]
        while got < n:
            data = self.conn.recv(min(1024 * 1024, n - got))
            if not data:
                raise ConnectionError("the client closed mid-body")
            parts.append(data)
            got += len(data)
        return b"".join(parts)


def _read_request(conn: socket.socket) -> Request | None:
    reader = _Reader(conn)
    head = reader.until(b"\r\n\r\n")
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    if chunked:
        parts = []
        while True:
            size_line = reader.until(b"\r\n")
            if size_line is None:
                raise ConnectionError("the client closed mid-body")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                reader.until(b"\r\n")
                break
            parts.append(reader.exactly(size))
            reader.exactly(2)
        body = b"".join(parts)
    else:
        body = reader.exactly(int(headers.get("content-length", "0") or 0))
    return Request(method, target, headers, body, chunked)




TOKEN = "sk-test-9f8e7d6c5b4a-SECRET"


def cli_env_for(server: FaultServer, config_dir: Any, **extra: str) -> dict[str, str]:
    """The environment of a CLI run against ``server`` (fleet `web`, the test token, no colour), plus ``extra``."""
    return cli_environ(config_dir, url=server.url + "/v1", initd=server.url + "/initd/{machine_id}", token=TOKEN,
                       fleet="web", **extra)


def slow_file() -> Stream:
    """64 MiB announced nowhere (chunked), sent slowly then stalled: a download still running when a test acts."""
    return Stream([b"x" * 65536] * 1024, content_type="application/octet-stream", chunk_delay=0.01, end="stall")


def serve_file(server: FaultServer, machine_id: str, answer: Action | None = None, fleet: str = "web") -> None:
    """Answer `fs get` of any path of ``machine_id`` (running, in ``fleet``) with ``answer`` (``slow_file()`` unless
    given); anything else, the server's queue."""
    answer = answer or slow_file()

    def handler(request):
        if request.path.endswith("/fs/read"):
            return answer
        if request.path.endswith(f"/machines/{machine_id}"):
            return Reply(json={"id": machine_id, "fleet": fleet, "state": "running", "config": {"image": "nginx"}})
        return None

    server.handler = handler


def has_partial(directory) -> bool:
    """A download's temporary file with something in it, in ``directory``: the download has started."""
    return any(p.name.endswith(".part") and p.stat().st_size > 0 for p in directory.iterdir())


def client_for(server: FaultServer | str, **kwargs: Any):  # -> Client
    """A client of the fault server with tiny backoffs, so that retries cost milliseconds."""
    from valyent_cli.api import Client

    base = server.url if isinstance(server, FaultServer) else server
    kwargs.setdefault("backoff_base", 0.001)
    kwargs.setdefault("backoff_max", 0.01)
    kwargs.setdefault("timeout", 5.0)
    return Client(
        kwargs.pop("token", TOKEN),
        endpoint=kwargs.pop("endpoint", base + "/v1"),
        initd_endpoint=kwargs.pop("initd_endpoint", base + "/initd/{machine_id}"),
        **kwargs,
    )


@pytest.fixture
def fault_server():
    server = FaultServer()
    yield server
    server.close()
