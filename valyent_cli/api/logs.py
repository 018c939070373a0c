"""Machine logs: NDJSON decoding, JSON-array answers, and a live follower that survives dropped streams."""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from valyent_cli.api._http import httpx

from valyent_cli.api import errors
from valyent_cli.api._deadline import progressing
from valyent_cli.api.constants import TIMESTAMP_SCALES

if TYPE_CHECKING:
    from valyent_cli.api._transport import Transport

NDJSON = "application/x-ndjson"
#: what we ask for: NDJSON streams, so a long log never sits whole in memory; a JSON array is accepted too
LOGS_ACCEPT = f"{NDJSON}, application/json;q=0.9"
#: how many of the latest entries' fingerprints a follower keeps to match a replay against (Ravel's nodes keep 100)
TAIL = 1000
#: the longest line a log stream may send: a server whose line never ends would otherwise fill the memory
MAX_LINE_BYTES = 8 * 1024 * 1024


def _too_long(size: int) -> errors.ResponseError:
    return errors.ResponseError(
        f"the server sent a log line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB ({size} bytes so far, no "
        "end of line): refusing to read more (a broken or hostile server?)"
    )


def entry_time(entry: dict[str, Any]) -> float | None:
    """The entry's time in Unix seconds, whatever the unit it came in: Ravel's nodes write seconds; above 10**11
    a timestamp is taken as milliseconds, above 10**14 as microseconds, above 10**17 as nanoseconds
    (``constants.TIMESTAMP_SCALES``)."""
    value = entry.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return None
        else:
            return None
    for limit, scale in TIMESTAMP_SCALES:
        if value > limit:
            return value / scale
    return float(value)


def line_batches(chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The complete lines of a byte stream, a list per chunk that ended at least one: lines split across chunks
    are joined (once, not re-copied at each chunk), and a last line without a newline comes at the end."""
    pending: list[bytes] = []  # the pieces of the line not yet ended
    size = 0  # their length
    for chunk in chunks:
        if not chunk:
            continue
        if b"\n" not in chunk:
            pending.append(chunk)
            size += len(chunk)
            if size > MAX_LINE_BYTES:
                raise _too_long(size)
            continue
        if pending:
            if size + chunk.index(b"\n") > MAX_LINE_BYTES:
                raise _too_long(size + chunk.index(b"\n"))
            pending.append(chunk)
            chunk = b"".join(pending)
            pending = []
        *lines, rest = chunk.split(b"\n")
        size = len(rest)
        if rest:
            pending.append(rest)
            if size > MAX_LINE_BYTES:
                raise _too_long(size)
        yield lines
    if pending:
        yield [b"".join(pending)]


def text_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of a plain-text stream (a build's log) as text, without their newline (nor a CR before it),
    blank lines kept; a line longer than ``MAX_LINE_BYTES`` raises a ``ResponseError``."""
    for lines in line_batches(chunks):
        for line in lines:
            yield line.decode("utf-8", "replace").removesuffix("\r")


def line_blocks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``line_batches`` as bytes: the complete lines of each chunk that ended at least one, as one block that ends
    with a newline (a last line without one gets it). No line is split out: a block is a network read's worth of
    lines, for the callers that check, pass on or decode them a block at a time."""
    pending: list[bytes] = []  # the pieces of the line not yet ended
    size = 0  # their length
    for chunk in chunks:
        if not chunk:
            continue
        end = chunk.rfind(b"\n") + 1
        if not end:
            pending.append(chunk)
            size += len(chunk)
            if size > MAX_LINE_BYTES:
                raise _too_long(size)
            continue
        if pending:
            pending.append(chunk[:end])
            block = b"".join(pending)
            pending = []
        else:
            block = chunk if end == len(chunk) else chunk[:end]
        size = len(chunk) - end
        if size:
            pending.append(chunk[end:])
            if size > MAX_LINE_BYTES:
                raise _too_long(size)
        yield block
    if pending:
        yield b"".join(pending) + b"\n"


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Complete lines from a byte stream (see ``line_batches``), blank lines skipped."""
    for lines in line_batches(chunks):
        for line in lines:
            if line.strip():
                yield line


def decode_ndjson(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """LogEntry objects from NDJSON chunks.

    A line that is a JSON array (a stock Ravel relays a node's whole answer as one line ``[{...},{...}]``) yields
    its objects. Any other line that is not a JSON object (``null``: Ravel's end-of-replay mark, or an empty
    answer) is skipped. A stream cut mid-line raises from ``chunks`` before the partial
    line is decoded; a stream closed cleanly after half a line ends with a line that fails to decode and is
    skipped: either way the follower reads it again, whole, on reconnect.
    """
    for line in iter_lines(chunks):
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            yield value
        elif isinstance(value, list):
            yield from (item for item in value if isinstance(item, dict))


def decode_response(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Entries from a logs answer, NDJSON or a JSON array, by its Content-Type (sniffed when it has none)."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    chunks = response.iter_bytes()
    if content_type == "application/json" or not content_type:
        from valyent_cli.api._transport import MAX_ANSWER_BYTES, read_capped

        body = read_capped(response, MAX_ANSWER_BYTES)
        stripped = body.lstrip()
        if stripped.startswith(b"["):
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):
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
            start = line[:1] if line[:1] in (b"{", b"[") else line.lstrip()[:1]
            if start == b"{":
                yield line
            elif start == b"[":
                yield from _array_line(line)
        return
    for entry in decode_response(response):
        yield json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode()


def _array_line(line: bytes) -> Iterator[bytes]:
    try:
        items = json.loads(line)
    except ValueError:
        return
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                yield json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()


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
    for lines in line_batches(response.iter_bytes()):
        batch = _objects(lines)
        if batch:
            yield batch


def iter_entry_blocks(response: httpx.Response) -> Iterator[bytes]:
    """The lines of ``iter_entry_batches`` as blocks of bytes, each line ending with a newline.

    A block of the NDJSON body whose lines are all JSON objects (the common case, checked at C speed) is passed on
    as it was read: for a history of hundreds of thousands of lines, splitting each read into lines and joining
    them again costs more than reading them. Any other block goes through the same line checks as
    ``iter_entry_batches`` (so the lines are the same, in the same order).
    """
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type or content_type == "application/json":
        for batch in iter_entry_batches(response):
            yield b"\n".join(batch) + b"\n"
        return
    not_object = _line_not_object()
    for block in line_blocks(response.iter_bytes()):
        if block[:1] == b"{" and not_object.search(block) is None:
            yield block  # every line starts with `{` (no newline is followed by anything else but the last)
            continue
        lines = _objects(block[:-1].split(b"\n"))
        if lines:
            yield b"\n".join(lines) + b"\n"


def _line_not_object() -> re.Pattern[bytes]:
    """A newline followed by something else than `{`: a line that is not a JSON object follows (one pass of the
    regex engine over a block costs less than counting its newlines); compiled on first use (cached by `re`)."""
    return re.compile(rb"\n[^{]")


def _objects(lines: list[bytes]) -> list[bytes]:
    """The entry lines among ``lines``: objects as they are, the items of a JSON-array line (a stock Ravel's
    history) one a line; anything else skipped."""
    out: list[bytes] = []
    for line in lines:
        start = line[:1] if line[:1] in (b"{", b"[") else line.lstrip()[:1]
        if start == b"{":
            out.append(line)
        elif start == b"[":
            out.extend(_array_line(line))
    return out


def _fingerprint(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry.get("timestamp"), entry.get("instance_id"), entry.get("source"), entry.get("level"), entry.get("message"))


class LogCursor:
    """Where a reader of a machine's log stands, stable when retention prunes the log's start: the time of the
    last entry taken and the entries taken at that time (by fingerprint, as many times as taken). `after(history)`
    yields the history's entries past it; then `pruned` says whether the history began after it, i.e. the server
    dropped entries the reader had taken, and maybe some it had not. A position would skip as many new entries as
    were pruned. Entries without a time fall back to the position."""

    def __init__(self) -> None:
        self.time: float | None = None
        self.at: Counter[tuple[Any, ...]] = Counter()
        self.taken = 0
        self.pruned = False

    def take(self, entry: dict[str, Any]) -> None:
        ts = entry_time(entry)
        if ts != self.time:
            self.time, self.at = ts, Counter()
        self.at[_fingerprint(entry)] += 1
        self.taken += 1

    def after(self, entries: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        if self.taken == 0:
            yield from entries
            return
        skip = Counter(self.at)
        index = 0
        for entry in entries:
            index += 1
            ts = entry_time(entry)
            if self.time is None or ts is None:
                if index > self.taken:
                    yield entry
                continue
            if index == 1 and ts > self.time:
                self.pruned = True
            if ts < self.time:
                continue
            if ts == self.time:
                fp = _fingerprint(entry)
                if skip[fp] > 0:
                    skip[fp] -= 1
                    continue
            yield entry
        if index == 0:
            self.pruned = True


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
        self._uses_marker = False  # the server marks the end of each replay with `null` (a stock Ravel)
        self._marked = False  # the current connection sent that mark
        self._tail: deque[tuple[Any, ...]] = deque(maxlen=TAIL)  # fingerprints of the latest entries yielded

    def __iter__(self) -> Iterator[dict[str, Any]]:
        failures = 0
        while True:
            new = 0
            reason = "the stream ended"
            opened: float | None = None
            self._delivered = 0
            self._marked = False
            try:
                with self._open(self.idle_timeout) as response:
                    opened = time.monotonic()
                    chunks = progressing(response.iter_bytes(), self.idle_timeout)  # a drip is a stall too
                    for entry in self._fresh(self._entries(chunks)):
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
            planned = self._marked and reason != "the stream stalled"
            if new == 0:
                lived = opened is not None and time.monotonic() - opened >= self.healthy_after
                if planned or (lived and (self._delivered > 0 or self.yielded == 0)):
                    failures = 0  # a healthy stream from a quiet machine, or Ravel's periodic cut
                else:
                    failures += 1
            if failures > self.max_failures:
                raise errors.StreamError(
                    f"the live log stream failed {failures} times in a row ({reason}); giving up"
                )
            self.reconnects += 1
            # Ravel ends every follow stream after 30 s (a write deadline): reconnecting then is routine, not news.
            if self._on_reconnect is not None and not planned:
                self._on_reconnect(self.reconnects, reason)
            if planned and failures == 0:
                continue  # at once: the node keeps only its last 100 entries, and lines go on coming meanwhile
            delay = min(self.backoff_base * 2 ** max(failures - 1, 0), self.backoff_max)
            time.sleep(delay * random.uniform(0.75, 1.0))

    def _entries(self, chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
        """The stream's entries. Ravel ends the replay of the history with a line ``null``: from the first one
        seen, a reconnection holds the replay back until that mark and keeps only what follows the entries already
        yielded (see ``_after_overlap``); every entry after the mark is live, hence new."""
        replay: list[dict[str, Any]] | None = [] if self._uses_marker and self.yielded else None
        for line in iter_lines(chunks):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if value is None:
                if not self._marked:
                    self._marked = True
                    self._uses_marker = True
                    if replay is not None:
                        yield from self._after_overlap(replay)
                        replay = None
                continue
            items = value if isinstance(value, list) else [value]
            for item in items:
                if not isinstance(item, dict):
                    continue
                if replay is not None:
                    replay.append(item)
                elif self._marked and self._uses_marker:
                    yield _Live(item)
                else:
                    yield item
        if replay:  # the stream ended before the mark: decide with what came
            yield from self._after_overlap(replay)

    def _after_overlap(self, replay: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The entries of a replay that come after what was already yielded.

        Ravel's replay is the node's last 100 entries (a sliding window), so it is matched against the tail of
        what was yielded: the longest prefix of the replay that equals a suffix of the yielded entries is old.
        Entries later than the latest time yielded are new whatever the match says. With second-resolution
        timestamps many entries share a time, which is why entries are matched as a sequence, not one by one.
        """
        prints = [_fingerprint(e) for e in replay]
        tail = list(self._tail)
        limit = min(len(prints), len(tail))
        if self._max_time is not None:
            for index, entry in enumerate(replay):
                ts = entry_time(entry)
                if ts is not None and ts > self._max_time:
                    limit = min(limit, index)
                    break
        overlap = 0
        for size in range(limit, 0, -1):
            if prints[:size] == tail[len(tail) - size:]:
                overlap = size
                break
        if overlap == 0 and limit and self._max_time is not None:
            # No sequence match (the window moved past everything yielded): go by time alone.
            for entry in replay:
                ts = entry_time(entry)
                if ts is None or ts > self._max_time:
                    yield _Live(entry)
            return
        for entry in replay[overlap:]:
            yield _Live(entry)

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
            if type(entry) is _Live:
                # Placed by the end-of-replay mark: new for sure. Keep the other rules' state in step.
                entry = dict(entry)
                if ts is not None and ts == self._max_time:
                    seen_at_max[fp] += 1
                self._by_count = False
                self._remember(ts, fp, seen_at_max)
                self.yielded += 1
                yield entry
                continue
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
        self._tail.append(fp)


class _Live(dict):
    """An entry known to be new (it came after Ravel's end-of-replay mark, or after the overlap of a replay)."""

    __slots__ = ()


def open_log_stream(client: Transport, fleet: str, machine: str) -> Callable[[float | None], Any]:
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
