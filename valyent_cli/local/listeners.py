"""What the sandbox's listeners (the API under uvicorn, the gateways' proxies) do against connections that only
take: a head timeout, a connection cap, and one line in server.log when the process runs out of descriptors.

- A connection has `HEADER_TIMEOUT` seconds to send a whole request head, from when it opens and again after each
  answer; dripping bytes does not extend it (uvicorn's keep-alive timer restarts on every byte, and nothing bounds
  the time before the first request). Then it is closed.
- At most `MAX_CONNECTIONS` connections per listener kind: past it, the connection that has waited longest for a
  request head is closed to make room; when none is idle, the new one gets a 503 and is closed. So a flood of idle
  connections cannot keep `/healthz` or an `exec` from being served.
- asyncio logs a traceback for each failed `accept()` while the process has no descriptor left (EMFILE), once a
  second: `log_accept_errors` writes one line instead, again at most once a minute while it lasts.

Both numbers can be set in the server's environment: VALYENT_LOCAL_HEADER_TIMEOUT (seconds),
VALYENT_LOCAL_MAX_CONNECTIONS.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import OrderedDict
from typing import Any

HEADER_TIMEOUT = 15.0
MAX_CONNECTIONS = 1000
_QUIET_FOR = 60.0  # seconds between two lines about the same trouble


def header_timeout() -> float:
    try:
        return max(0.1, float(os.environ.get("VALYENT_LOCAL_HEADER_TIMEOUT", HEADER_TIMEOUT)))
    except ValueError:
        return HEADER_TIMEOUT


def max_connections() -> int:
    try:
        return max(1, int(os.environ.get("VALYENT_LOCAL_MAX_CONNECTIONS", MAX_CONNECTIONS)))
    except ValueError:
        return MAX_CONNECTIONS


_said: dict[str, float] = {}


def say_once(key: str, message: str) -> None:
    """One line on stderr (server.log), then silence about `key` for a minute."""
    now = time.monotonic()
    if now - _said.get(key, -_QUIET_FOR) >= _QUIET_FOR:
        _said[key] = now
        print(message, file=sys.stderr, flush=True)


class Guard:
    """The connections of one kind of listener: which are waiting for a request head (oldest first), the cap."""

    def __init__(self, what: str):
        self.what = what
        self.open = 0
        self.waiting: OrderedDict[Any, Any] = OrderedDict()  # connection -> its close callable

    def admit(self) -> bool:
        """A new connection: True to serve it (having closed the longest-idle one if at the cap)."""
        limit = max_connections()
        if self.open >= limit:
            if not self.waiting:
                say_once(f"cap-{self.what}", f"{self.what}: {limit} connections open, all busy: refusing new ones "
                                             "until some close (VALYENT_LOCAL_MAX_CONNECTIONS)")
                return False
            _, close = self.waiting.popitem(last=False)
            say_once(f"evict-{self.what}", f"{self.what}: {limit} connections open: closing the ones idle longest "
                                           "to make room (VALYENT_LOCAL_MAX_CONNECTIONS)")
            close()
        self.open += 1
        return True

    def idle(self, conn: Any, close) -> None:
        self.waiting[conn] = close

    def busy(self, conn: Any) -> None:
        self.waiting.pop(conn, None)

    def gone(self, conn: Any) -> None:
        self.waiting.pop(conn, None)
        self.open = max(0, self.open - 1)


BUSY_503 = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def log_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio's complaint about a failed accept (no descriptor left) as one line a minute, not a traceback a
    second; anything else goes to the default handler."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            say_once("accept", f"cannot accept connections: {reason} (the process has no file descriptor left): "
                               "new connections wait until some close")
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def h11_protocol():
    """uvicorn's h11 protocol with the head timeout and the cap of the module's docstring."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    guard = Guard("the sandbox API")

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _admitted = False

        def connection_made(self, transport) -> None:  # type: ignore[override]
            if not guard.admit():
                transport.write(BUSY_503)
                transport.close()
                self.transport = transport
                return
            self._admitted = True
            super().connection_made(transport)
            self._await_head()

        def _await_head(self) -> None:
            self._cancel_head()
            self._waiting_cycle = self.cycle
            self._head_timer = self.loop.call_later(header_timeout(), self._close)
            guard.idle(self, self._close)

        def _cancel_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            guard.busy(self)

        def _close(self) -> None:
            self._cancel_head()
            if not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._head_timer is not None and self.cycle is not self._waiting_cycle:
                self._cancel_head()  # a whole request head arrived

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.cycle is not None and self.cycle.response_complete:
                self._await_head()

        def connection_lost(self, exc) -> None:
            if not self._admitted:
                return
            self._cancel_head()
            guard.gone(self)
            super().connection_lost(exc)

    return GuardedH11Protocol
