"""The engine behind `valyent logs`: history merge, spooling and live follow of machines' logs.

This is a hot path (a chatty machine writes hundreds of thousands of lines), so nothing here holds a whole log:
history is streamed entry by entry and written in batches of pre-built lines; `--json` without filters passes
the server's NDJSON lines through without decoding them. A live follow reads each machine's stream in a thread
that feeds one queue; the main thread prints whatever has arrived and flushes as soon as the queue runs dry, so a
new line is never held back waiting for more. The command itself (options, filters, finding the machines) is
`valyent_cli.commands.logs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from valyent_cli.api import Client
    from valyent_cli.cli.output import LineWriter, LogFormatter

    #: a predicate on (entry, its time in Unix seconds)
    Keep = Callable[[dict[str, Any], float | None], bool]

#: how often a fleet-wide follow looks for machines created after it started (seconds)
NEW_MACHINE_POLL = 3.0
#: lines written at once when printing history
BATCH = 2048
#: a fleet's history merges this many live streams at most; the logs of further machines are first read into
#: temporary files (the HTTP client's pool holds 100 connections)
MAX_STREAMS = 32
#: a fleet-wide follow holds one connection per machine: at most this many
MAX_FOLLOW = 64



# What a machine's history looked like when it was printed: how many entries, and the time of the last one.
Seen = dict[str, tuple[int, "float | None"]]


class MergedLogPrinter:
    """Prints machines' logs: one machine's history, a fleet's histories merged by time (streams past
    :data:`MAX_STREAMS` spooled to temporary files first), and live follows whose lines are merged as they arrive
    (one reader thread per machine feeding one queue; a fleet-wide follow also picks up new machines)."""

    def __init__(
        self,
        client: Client,
        fleet: str,
        writer: LineWriter,
        formatter: LogFormatter,
        keep: Keep | None,
        *,
        json: bool,
        note_color: bool,
    ) -> None:
        self.client = client
        self.fleet = fleet
        self.writer = writer
        self.formatter = formatter
        self.keep = keep
        self.json = json
        self.note_color = note_color

    # -- the log so far ---------------------------------------------------------------------------------------
    def history_one(self, machine_id: str) -> None:
        writer = self.writer
        keep = self.keep
        if keep is None:  # every entry printed: the NDJSON a network read at a time, never split into lines
            blocks = self.client.machines.iter_log_blocks(self.fleet, machine_id)
            if self.json:
                for block in blocks:
                    writer.block(block)
            else:
                lines_of = self.formatter.lines
                for block in blocks:
                    writer.text(lines_of(_block_entries(block)))
            writer.flush()
            return
        if self.json:
            for batch in self.client.machines.iter_log_line_batches(self.fleet, machine_id):
                writer.raw([raw for raw, entry in _decode(batch) if keep(entry, _time(entry))])
            writer.flush()
            return
        line_of = self.formatter.line
        from valyent_cli.api import entry_time
        from valyent_cli.api.constants import MS_ABOVE

        for batch in self.client.machines.iter_log_line_batches(self.fleet, machine_id):
            text_out = []
            for _, entry in _decode(batch):
                # entry_time's common case inlined: this loop runs once per line of the log
                value = entry.get("timestamp")
                if type(value) is int:
                    ts = float(value) if value <= MS_ABOVE else entry_time(entry)
                else:
                    ts = entry_time(entry)
                if keep is None or keep(entry, ts):
                    text_out.append(line_of(entry, ts))
            writer.text(text_out)
        writer.flush()

    def history_fleet(self, machine_ids: list[str]) -> Seen:
        """Every machine's log so far, merged by time; returns what was read of each, for a follow to skip."""
        import heapq

        seen: Seen = {}
        spooled = {m: self._spool(m) for m in machine_ids[MAX_STREAMS:]}

        def lines_of(machine_id: str) -> Iterator[bytes]:
            spool = spooled.get(machine_id)
            if spool is None:
                return self.client.machines.iter_log_lines(self.fleet, machine_id)
            return (line[:-1] for line in spool)

        def entries(machine_id: str) -> Iterator[tuple[float, str, bytes, dict[str, Any], float | None]]:
            count, last = 0, None
            try:
                for batch in _batches(lines_of(machine_id)):
                    for line, entry in _decode(batch):
                        ts = _time(entry)
                        count += 1
                        if ts is not None:
                            last = ts
                        yield (ts if ts is not None else 0.0, machine_id, line, entry, ts)
            finally:
                seen[machine_id] = (count, last)

        keep = self.keep
        writer = self.writer
        line_of = self.formatter.line
        raw_out: list[bytes] = []
        text_out: list[str] = []
        # heapq.merge holds one entry per machine: memory stays flat whatever the logs' length.
        merged = heapq.merge(*(entries(m) for m in machine_ids), key=lambda item: item[0])
        for _, machine_id, line, entry, ts in merged:
            if keep is not None and not keep(entry, ts):
                continue
            if self.json:
                raw_out.append(_with_machine(line, machine_id))
                if len(raw_out) >= BATCH:
                    writer.raw(raw_out)
                    raw_out = []
            else:
                text_out.append(line_of(entry, ts, machine_id))
                if len(text_out) >= BATCH:
                    writer.text(text_out)
                    text_out = []
        writer.raw(raw_out)
        writer.text(text_out, flush=True)
        for spool in spooled.values():
            spool.close()
        return seen

    def _spool(self, machine_id: str) -> Any:
        """A machine's log so far in a temporary file (on disk past 1 MB), one entry a line."""
        import tempfile

        spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)
        for batch in self.client.machines.iter_log_line_batches(self.fleet, machine_id):
            spool.write(b"\n".join(batch) + b"\n")
        spool.seek(0)
        return spool

    # -- live -------------------------------------------------------------------------------------------------
    def follow(self, machine_ids: list[str], idle_timeout: float | None, *, watch_fleet: bool, seen: Seen | None = None,
               exit_with: bool = False) -> None:
        """Print each machine's new entries as they come, until Ctrl-C (or, for one machine, until it is destroyed)."""
        import queue
        import threading

        from valyent_cli.api import ValyentError, entry_time

        events: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        seen = seen or {}

        def pump(machine_id: str) -> None:
            def on_reconnect(count: int, reason: str) -> None:
                events.put(("note", machine_id, f"{reason}; reconnecting (attempt {count})"))

            try:
                follower = self.client.machines.follow_logs(
                    self.fleet, machine_id, idle_timeout=idle_timeout, on_reconnect=on_reconnect
                )
                count, last = seen.get(machine_id, (0, None))
                for entry in _skip_printed(iter(follower), count, last):
                    events.put(("entry", machine_id, entry))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which reports it
                events.put(("error", machine_id, exc))
            else:
                events.put(("end", machine_id, None))

        def start(machine_id: str) -> None:
            threading.Thread(target=pump, args=(machine_id,), name=f"logs-{machine_id}", daemon=True).start()

        def watch(known: set[str]) -> None:
            import time

            while True:
                time.sleep(NEW_MACHINE_POLL)
                try:
                    current = self.client.machines.list(self.fleet)
                except ValyentError:
                    continue
                for m in current:
                    machine_id = str(m.get("id"))
                    if machine_id not in known:
                        known.add(machine_id)
                        events.put(("new", machine_id, None))

        def watch_exit(machine_id: str) -> None:
            """One machine: tell the main thread each time it exits (the live log goes on across restarts)."""
            from valyent_cli.api import TimeoutError as WaitTimeout

            want = "stopped"
            while True:
                try:
                    self.client.machines.wait(self.fleet, machine_id, want, 60)
                except WaitTimeout:
                    continue
                except ValyentError:
                    return  # destroyed: the follow ends by itself
                if want == "stopped":
                    events.put(("exited", machine_id, _exit_code(self.client, self.fleet, machine_id)))
                    if exit_with:
                        return
                want = "running" if want == "stopped" else "stopped"

        everyone = set(machine_ids)
        if len(machine_ids) > MAX_FOLLOW:
            self.writer.note(
                f"Following the first {MAX_FOLLOW} of {len(machine_ids)} machines; name one to follow it alone.",
                color=self.note_color,
            )
            machine_ids = machine_ids[:MAX_FOLLOW]
        active = set(machine_ids)
        for machine_id in machine_ids:
            start(machine_id)
        if watch_fleet:
            threading.Thread(target=watch, args=(everyone,), name="logs-watch", daemon=True).start()
        else:
            threading.Thread(target=watch_exit, args=(machine_ids[0],), name="logs-exit", daemon=True).start()
        received = 0  # entries taken from the live log, one machine's

        keep = self.keep
        writer = self.writer
        line_of = self.formatter.line
        single = not watch_fleet
        while active or watch_fleet:
            try:
                item = events.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = [item]
            # Whatever else has already arrived goes out in the same write; then flush, since the queue is dry.
            while len(batch) < BATCH:
                try:
                    batch.append(events.get_nowait())
                except queue.Empty:
                    break
            text_out: list[str] = []
            raw_out: list[bytes] = []
            for kind, machine_id, payload in batch:
                if kind == "entry":
                    received += 1
                    ts = entry_time(payload)
                    if keep is not None and not keep(payload, ts):
                        continue
                    if self.json:
                        raw_out.append(_dumps(payload if single or "machine_id" in payload
                                              else {"machine_id": machine_id, **payload}))
                    else:
                        text_out.append(line_of(payload, ts, machine_id))
                    continue
                # Anything else goes to stderr: flush the stdout lines before it, to keep the order on a terminal.
                writer.raw(raw_out)
                writer.text(text_out, flush=True)
                raw_out, text_out = [], []
                if kind == "note":
                    writer.note(f"{machine_id}: {payload}" if not single else payload, color=self.note_color)
                elif kind == "new":
                    if len(active) >= MAX_FOLLOW:
                        writer.note(f"{machine_id}: new machine, not followed (at most {MAX_FOLLOW})",
                                    color=self.note_color)
                        continue
                    active.add(machine_id)
                    self.formatter.set_machines([machine_id])
                    writer.note(f"{machine_id}: new machine, following its log", color=self.note_color)
                    start(machine_id)
                elif kind == "exited":
                    code = "unknown" if payload is None else payload
                    if not exit_with:
                        writer.note(f"Machine {machine_id} exited (exit code {code}); still following its log "
                                    "(Ctrl-C to stop; --exit-with-machine stops with it)", color=self.note_color)
                        continue
                    self._rest(machine_id, received)
                    writer.note(f"Machine {machine_id} exited (exit code {code})", color=self.note_color)
                    from valyent_cli.cli.exitstatus import shell_code

                    raise typer.Exit(shell_code(payload))
                elif kind == "end":
                    active.discard(machine_id)
                    writer.note(f"{machine_id}: destroyed, its log has ended", color=self.note_color)
                elif kind == "error":
                    active.discard(machine_id)
                    if single or not isinstance(payload, Exception):
                        raise payload
                    writer.note(f"{machine_id}: stopped following: {payload}", color=self.note_color)
            writer.raw(raw_out)
            writer.text(text_out, flush=True)


    def _rest(self, machine_id: str, received: int) -> None:
        """What the machine's whole log holds after its first ``received`` entries: the lines it wrote before it
        exited that the live stream has not delivered yet."""
        from valyent_cli.api import entry_time

        keep, text_out, raw_out = self.keep, [], []
        for index, entry in enumerate(self.client.machines.iter_logs(self.fleet, machine_id)):
            if index < received:
                continue
            ts = entry_time(entry)
            if keep is not None and not keep(entry, ts):
                continue
            if self.json:
                raw_out.append(_dumps(entry))
            else:
                text_out.append(self.formatter.line(entry, ts, machine_id))
        self.writer.raw(raw_out)
        self.writer.text(text_out, flush=True)


def _exit_code(client: Client, fleet: str, machine_id: str) -> int | None:
    """The exit code of the machine's last exit, from its `machine.exited` event."""
    from valyent_cli.api import ValyentError
    from valyent_cli.cli.exitstatus import exit_code_of, ordered

    try:
        events = ordered(client.machines.events(fleet, machine_id))
    except ValyentError:
        return None
    for event in reversed(events):
        if event.get("type") == "machine.exited":
            return exit_code_of(event)
    return None


def _batches(lines: Iterator[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    append = batch.append
    for line in lines:
        append(line)
        if len(batch) >= BATCH:
            yield batch
            batch = []
            append = batch.append
    if batch:
        yield batch


def _decode(batch: list[bytes]) -> list[tuple[bytes, dict[str, Any]]]:
    """(line, entry) for each line that is a JSON object.

    One json.loads for the whole batch, as an array: per-line calls cost more in call overhead than in parsing.
    A batch with a line that is not one JSON object is decoded line by line, skipping that line.
    """
    from json import loads

    try:
        entries = loads(b"[" + b",".join(batch) + b"]")
    except (ValueError, RecursionError):
        pass
    else:
        if len(entries) == len(batch) and all(type(e) is dict for e in entries):
            return list(zip(batch, entries))
    pairs = []
    for line in batch:
        try:
            entry = loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(entry, dict):
            pairs.append((line, entry))
    return pairs


def _block_entries(block: bytes) -> list[dict[str, Any]]:
    """The entries of a block of NDJSON lines (``iter_log_blocks``), as ``_decode`` gives them for its lines: one
    json.loads for the whole block as an array (its newlines made commas), else line by line."""
    from json import loads

    try:
        entries = loads(b"[" + block[:-1].replace(b"\n", b",") + b"]")
    except (ValueError, RecursionError):
        pass
    else:
        if len(entries) == block.count(b"\n") and all(type(e) is dict for e in entries):
            return entries
    return [entry for _, entry in _decode(block[:-1].split(b"\n"))]


def _time(entry: dict[str, Any]) -> float | None:
    from valyent_cli.api import entry_time

    return entry_time(entry)


def _skip_printed(entries: Iterator[dict[str, Any]], count: int, last: float | None) -> Iterator[dict[str, Any]]:
    """Skip the first ``count`` entries of a follow (the history already printed), while their times agree."""
    if count:
        from valyent_cli.api import entry_time

        for entry in entries:
            ts = entry_time(entry)
            if ts is not None and last is not None and ts > last:
                yield entry  # newer than anything printed: the history changed under us, stop skipping
                break
            count -= 1
            if count <= 0:
                break
    yield from entries


def _dumps(entry: dict[str, Any]) -> bytes:
    import json

    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")


def _with_machine(line: bytes, machine_id: str) -> bytes:
    """A fleet-wide JSON entry with the id of its machine first (`machine_id`), unless the server put one there."""
    if b'"machine_id"' in line or not line.startswith(b"{"):
        return line
    rest = line[1:].lstrip()
    return b'{"machine_id":"' + machine_id.encode() + (b'",' if rest[:1] != b"}" else b'"') + rest
