"""Overall deadlines: a server that drips its answer never trips a timeout between two reads.

httpx's timeouts bound each read, so an answer sent one byte a second would hold a call forever. Each attempt of a
call that is not a stream therefore gets an overall deadline (its read timeout plus the client's timeout: 60 s by
default). When it passes, a watchdog shuts the connection's socket down, the blocked read returns, and the call
fails as a timeout (``errors.TimeoutError``, exit 5), after the retries that are safe. An upload's deadline starts
once it is sent: sending a large file may take as long as it takes.

Live streams (``logs -f``, downloads) have none; ``progressing`` guards a log stream instead: one that delivers
bytes but no complete line for ``idle`` seconds is as stalled as a silent one.
"""

from __future__ import annotations

import heapq
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from valyent_cli.api import errors
from valyent_cli.api._http import httpx


class Call:
    """One call (all its attempts), and the watch of its current attempt. The deadline is the call's: its attempts
    (retries and the waits between them) share it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.current: _Watch | None = None

    def left(self) -> float:
        """Seconds left of the call's budget."""
        return self.deadline - time.monotonic()

    @property
    def expired(self) -> bool:
        """Whether the deadline ended the last attempt (a per-read timeout before it is not ours to rename)."""
        return self.current is not None and self.current.fired

    def end(self) -> None:
        if self.current is not None:
            self.current.cancel()


class _Watch:
    """The deadline of one attempt."""

    def __init__(self, call: Call, owner: Deadlines) -> None:
        self.call = call
        self.owner = owner
        self.stream: Any = None  # httpcore's network stream, once known
        self.started = False
        self.done = False
        self.fired = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        # httpcore reports each new connection's stream; a reused one is the last stream seen (see Deadlines).
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            if stream is not None:
                self.stream = stream
                self.owner.last_stream = stream

    def start(self) -> None:
        if not self.started and not self.done:
            self.started = True
            _watchdog.schedule(self, self.call.deadline)

    def cancel(self) -> None:
        self.done = True  # the watchdog drops it when its time comes
        self.stream = None

    def fire(self) -> None:
        if self.done:
            return
        self.fired = True
        stream = self.stream or self.owner.last_stream
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Watchdog:
    """One thread for every deadline of the process (a thread per call would cost ~0.4 ms each): it sleeps until
    the earliest one, and fires those whose attempt has not ended."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._seq = 0

    def schedule(self, watch: _Watch, at: float) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (at, self._seq, watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="valyent-deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is watch:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _, watch = self._heap[0]
                delay = at - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
            watch.fire()


_watchdog = _Watchdog()


class _Closing(httpx.SyncByteStream):
    """A response body stream that ends its attempt's watch when closed (read to the end, or given up)."""

    def __init__(self, inner: Any, watch: _Watch) -> None:
        self._inner = inner
        self._watch = watch

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        self._watch.cancel()
        self._inner.close()


class Deadlines:
    """Installed on a client's httpx.Client as event hooks; ``call(seconds)`` arms the calls of this thread."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.last_stream: Any = None

    def install(self, http: httpx.Client) -> None:
        hooks = http.event_hooks
        hooks["request"].append(self._on_request)
        hooks["response"].append(self._on_response)
        http.event_hooks = hooks

    def arm(self, call: Call | None) -> None:
        self._local.call = call

    def current(self) -> Call | None:
        """The call this thread sends now, if it has a deadline."""
        return getattr(self._local, "call", None)

    def _on_request(self, request: httpx.Request) -> None:
        call = getattr(self._local, "call", None)
        if call is None:
            return
        call.end()  # a previous attempt that failed without an answer: its watch ends with it
        watch = call.current = _Watch(call, self)
        request.extensions["trace"] = watch.trace
        request.extensions["valyent_deadline"] = watch
        if isinstance(request.stream, httpx.ByteStream):  # not an upload: the deadline covers sending too
            watch.start()

    def _on_response(self, response: httpx.Response) -> None:
        watch = response.request.extensions.get("valyent_deadline")
        if watch is None:
            return
        stream = response.extensions.get("network_stream")
        if stream is not None:
            watch.stream = stream
            self.last_stream = stream
        watch.start()
        response.stream = _Closing(response.stream, watch)  # type: ignore[assignment]


def seconds_for(timeout: Any, default: float) -> float | None:
    """The overall deadline of a call (every attempt of it) from its timeout: its read timeout plus the client's
    timeout; 2x the client's timeout for a call without one of its own."""
    if timeout is None:
        return 2 * default
    if isinstance(timeout, httpx.Timeout):
        if timeout.read is None:
            return None
        return timeout.read + default
    try:
        return float(timeout) + default
    except (TypeError, ValueError):
        return 2 * default


def expired(exc: errors.ValyentError, call: Call, method: str, url: str) -> errors.TimeoutError:
    from urllib.parse import urlsplit

    parts = urlsplit(str(getattr(exc, "url", None) or url))
    return errors.TimeoutError(
        f"no complete answer from {parts.scheme}://{parts.netloc} within {call.seconds:g} s ({method} {parts.path}):"
        " the server answers too slowly", url=getattr(exc, "url", None) or url, method=method,
    )


def progressing(chunks: Iterable[bytes], idle: float | None) -> Iterator[bytes]:
    """Pass chunks on; raise ``errors.TimeoutError`` when ``idle`` seconds go by without a complete line."""
    if idle is None:
        yield from chunks
        return
    last_line = time.monotonic()
    for chunk in chunks:
        now = time.monotonic()
        if b"\n" in chunk:
            last_line = now
        elif now - last_line > idle:
            raise errors.TimeoutError(f"the stream sent no complete line in {idle:g} s")
        yield chunk
