"""Machine logs: NDJSON decoding, JSON-array answers, and a live follower that survives dropped streams."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from valyent_cli.api._http import httpx

from valyent_cli.api import errors

if TYPE_CHECKING:
    from valyent_cli.api.client import Client

NDJSON = "application/x-ndjson"
#: what we ask for: NDJSON streams, so a long log never sits whole in memory; a JSON array is accepted too
LOGS_ACCEPT = f"{NDJSON}, application/json;q=0.9"


def entry_time(entry: dict[str, Any]) -> float | None:
    """The entry's time in Unix seconds; a timestamp above 10**11 is taken as milliseconds."""
    value = entry.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return None
        else:
            return None
    return value / 1000.0 if value > 1e11 else float(value)


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Complete lines from a byte stream: lines split across chunks are joined, blank lines skipped.

    A last line without a newline is yielded at the end of the stream. A line spread over many chunks is joined
    once, not re-copied at each chunk.
    """
    pending: list[bytes] = []  # the pieces of the line not yet ended
    for chunk in chunks:
        if not chunk:
            continue
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        if pending:
            pending.append(chunk)
            chunk = b"".join(pending)
            pending = []
        *lines, rest = chunk.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
        if rest:
            pending.append(rest)
    if pending:
        last = b"".join(pending)
        if last.strip():
            yield last


def decode_ndjson(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """LogEntry objects from NDJSON chunks.

    A line that is not a JSON object is skipped. A stream cut mid-line raises from ``chunks`` before the partial
    line is decoded; a stream closed cleanly after half a line ends with a line that fails to decode and is
    skipped: either way the follower reads it again, whole, on reconnect.
    """
    for line in iter_lines(chunks):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


def decode_response(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Entries from a logs answer, NDJSON or a JSON array, by its Content-Type (sniffed when it has none)."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    chunks = response.iter_bytes()
    if content_type == "application/json" or not content_type:
        body = b"".join(chunks)
        stripped = body.lstrip()
        if stripped.startswith(b"["):
            try:
                data = json.loads(body)
            except ValueError:
                raise errors.ResponseError("the logs answer is not valid JSON") from None
            yield from (item for item in data if isinstance(item, dict))
            return
        chunks = iter([body])
    yield from decode_ndjson(chunks)


def iter_entry_lines(response: httpx.Response) -> Iterator[bytes]:
    """Each entry of a logs answer as one line of JSON, without its newline.

    NDJSON lines are passed on exactly as the server sent them, never decoded (the fast path of ``logs --json``);
    the items of a JSON-array answer are re-encoded compactly, one a line. Lines that are not JSON objects are
    skipped.
    """
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json":
        for line in iter_lines(response.iter_bytes()):
            if line[:1] == b"{" or line.lstrip()[:1] == b"{":
                yield line
        return
    for entry in decode_response(response):
        yield json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode()


def iter_entry_batches(response: httpx.Response) -> Iterator[list[bytes]]:
    """The lines of ``iter_entry_lines``, a list per network read: for a long NDJSON history, a per-line generator
    chain costs more than the rest of ``logs --json`` (the lines are the same, in the same order)."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type or content_type == "application/json":
        batch: list[bytes] = []
        for line in iter_entry_lines(response):
            batch.append(line)
            if len(batch) >= 2048:
                yield batch
                batch = []
        if batch:
            yield batch
        return
    pending: list[bytes] = []  # the pieces of a line not yet ended
    for chunk in response.iter_bytes():
        if b"\n" not in chunk:
            if chunk:
                pending.append(chunk)
            continue
        if pending:
            pending.append(chunk)
            chunk = b"".join(pending)
            pending = []
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if rest:
            pending.append(rest)
        batch = [line for line in lines if line[:1] == b"{" or line.lstrip()[:1] == b"{"]
        if batch:
            yield batch
    last = b"".join(pending)
    if last.lstrip()[:1] == b"{":
        yield [last]


def _fingerprint(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry.get("timestamp"), entry.get("instance_id"), entry.get("source"), entry.get("level"), entry.get("message"))


class LogFollower:
    """Live logs that survive a dropped stream.

    The server replays the whole history at each (re)connection, then sends new lines as they come. Two rules
    decide what is new in a replay:

    * by position: the first ``yielded`` entries of a replay are the ones already shown, checked at the last of
      them (it must be the last entry yielded);
    * by time, which also guards the first rule: an entry later than the latest entry yielded (or at the same
      time but not yet seen that many times) is new wherever it appears.

    When a replay contradicts the first rule (the history was trimmed or rewritten), the follower goes by time
    alone from then on. Entries without a timestamp can only be placed by position.

    ``idle_timeout`` is how long a silent stream is trusted before it is reopened. A connection that brings
    nothing new is a failure, unless it stayed open ``healthy_after`` seconds and replayed the history: that is a
    quiet machine (or a proxy closing idle streams), which is followed for as long as it takes. ``max_failures``
    failures in a row end the follow with a ``StreamError``. Reconnections wait
    ``min(backoff_base * 2**n, backoff_max)`` seconds (n: failures in a row), with jitter.
    """

    def __init__(
        self,
        open_stream: Callable[[float | None], Any],
        *,
        max_failures: int = 5,
        idle_timeout: float | None = 120.0,
        is_finished: Callable[[], bool] | None = None,
        on_reconnect: Callable[[int, str], None] | None = None,
        backoff_base: float = 0.25,
        backoff_max: float = 5.0,
        healthy_after: float = 10.0,
    ) -> None:
        self._open = open_stream
        self.healthy_after = healthy_after
        self.max_failures = max_failures
        self.idle_timeout = idle_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._is_finished = is_finished
        self._on_reconnect = on_reconnect
        self.yielded = 0
        self.reconnects = 0
        self._delivered = 0  # entries the current connection sent, old and new
        self._last: tuple[Any, ...] | None = None
        # The latest time yielded, and how many times each entry at exactly that time was yielded.
        self._max_time: float | None = None
        self._at_max: Counter[tuple[Any, ...]] = Counter()
        self._by_count = True

    def __iter__(self) -> Iterator[dict[str, Any]]:
        failures = 0
        while True:
            new = 0
            reason = "the stream ended"
            opened: float | None = None
            self._delivered = 0
            try:
                with self._open(self.idle_timeout) as response:
                    opened = time.monotonic()
                    for entry in self._fresh(decode_ndjson(response.iter_bytes())):
                        new += 1
                        failures = 0
                        yield entry
            except errors.TimeoutError:
                reason = "the stream stalled"
            except (httpx.TransportError, errors.TransportError) as exc:
                reason = f"the stream broke ({type(exc).__name__})"
            except errors.ServerError as exc:
                reason = f"the server failed ({exc.status})"
            if self._is_finished is not None and self._safe_finished():
                return
            if new == 0:
                lived = opened is not None and time.monotonic() - opened >= self.healthy_after
                if lived and (self._delivered > 0 or self.yielded == 0):
                    failures = 0  # a healthy stream from a quiet machine
                else:
                    failures += 1
            if failures > self.max_failures:
                raise errors.StreamError(
                    f"the live log stream failed {failures} times in a row ({reason}); giving up"
                )
            self.reconnects += 1
            if self._on_reconnect is not None:
                self._on_reconnect(self.reconnects, reason)
            delay = min(self.backoff_base * 2 ** max(failures - 1, 0), self.backoff_max)
            time.sleep(delay * random.uniform(0.75, 1.0))

    def _safe_finished(self) -> bool:
        try:
            return bool(self._is_finished())  # type: ignore[misc]
        except errors.NotFound:
            return True
        except errors.ValyentError:
            return False

    def _fresh(self, entries: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Skip the replayed history, yield what is new."""
        index = 0
        seen_at_max: Counter[tuple[Any, ...]] = Counter()  # this replay's entries at the latest time yielded
        for entry in entries:
            index += 1
            self._delivered = index
            fp = _fingerprint(entry)
            ts = entry_time(entry)
            if ts is not None and ts == self._max_time:
                seen_at_max[fp] += 1
            later = self._later(ts, fp, seen_at_max)
            if self._by_count:
                if later:
                    if index <= self.yielded:
                        # New entries where the replay should hold old ones: the history changed under us.
                        self._by_count = False
                elif index < self.yielded:
                    continue
                elif index == self.yielded:
                    if fp == self._last or later is None:
                        continue
                    self._by_count = False
                    continue
            elif not later:
                continue
            self._remember(ts, fp, seen_at_max)
            self.yielded = index if self._by_count else self.yielded + 1
            yield entry

    def _later(self, ts: float | None, fp: tuple[Any, ...], seen_at_max: Counter[tuple[Any, ...]]) -> bool | None:
        """Whether an entry comes after everything yielded, by time; None when time cannot tell."""
        if ts is None or self._max_time is None:
            if self._by_count:
                return None
            return fp != self._last
        if ts > self._max_time:
            return True
        if ts < self._max_time:
            return False
        return seen_at_max[fp] > self._at_max[fp]

    def _remember(self, ts: float | None, fp: tuple[Any, ...], seen_at_max: Counter[tuple[Any, ...]]) -> None:
        if ts is not None:
            if self._max_time is None or ts > self._max_time:
                self._max_time = ts
                self._at_max = Counter()
                seen_at_max.clear()
                seen_at_max[fp] = 1
            self._at_max[fp] += 1
        self._last = fp


def open_log_stream(client: Client, fleet: str, machine: str) -> Callable[[float | None], Any]:
    """A function that opens the live log stream of a machine, with a given idle timeout."""

    def open_stream(idle_timeout: float | None) -> Any:
        return client.stream(
            "GET",
            client.url("fleets", fleet, "machines", machine, "logs"),
            params={"follow": True},
            headers={"Accept": NDJSON},
            timeout=httpx.Timeout(client.timeout, read=idle_timeout),
        )

    return open_stream
