"""The store's machine logs: written in batches on their own connection, read as rows or as ready-made NDJSON."""

from __future__ import annotations

import sqlite3

from json.encoder import encode_basestring_ascii as _json_str


class LogQueries:
    """Log lines: added, counted, pruned, deleted, and read from a given id on."""

    db: sqlite3.Connection
    logdb: sqlite3.Connection  # log batches are written on a connection of their own (see database.py)

    def add_logs(self, rows: list[tuple[str, int, str, str, str, str]]) -> None:
        """rows: (machine_id, ts_ms, instance_id, source, level, message), one transaction for the batch."""
        if not rows:
            return
        q = _json_str
        rows = [
            (mid, ts, iid, src, lvl, msg,
             f'{{"timestamp":{ts},"instance_id":{q(iid)},"source":{q(src)},"level":{q(lvl)},"message":{q(msg)}}}')
            for mid, ts, iid, src, lvl, msg in rows
        ]
        db = self.logdb
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT INTO logs (machine_id, ts, instance_id, source, level, message, line) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def log_usage(self, machine_id: str) -> tuple[int, int]:
        """(entries, characters of message text) kept for a machine."""
        row = self.db.execute("SELECT count(*), coalesce(sum(length(message)), 0) FROM logs WHERE machine_id = ?",
                              (machine_id,)).fetchone()
        return row[0], row[1]

    def prune_logs(self, machine_id: str, keep: int) -> int:
        """Delete all but the newest `keep` entries of a machine's log; returns how many went."""
        row = self.db.execute("SELECT id FROM logs WHERE machine_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                              (machine_id, max(keep, 0))).fetchone()
        if row is None:
            return 0
        return self.logdb.execute("DELETE FROM logs WHERE machine_id = ? AND id <= ?", (machine_id, row[0])).rowcount

    def delete_logs(self, machine_id: str, batch: int = 50_000) -> int:
        """Delete up to `batch` entries of a machine's log (call again while it returns `batch`)."""
        return self.logdb.execute(
            "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE machine_id = ? LIMIT ?)", (machine_id, batch)
        ).rowcount

    def machines_with_logs_destroyed(self) -> list[str]:
        """Destroyed machines that still have log entries (a server before logs were removed kept them)."""
        return [r[0] for r in self.db.execute(
            "SELECT id FROM machines WHERE state = 'destroyed' AND EXISTS "
            "(SELECT 1 FROM logs WHERE logs.machine_id = machines.id)")]

    def read_log_text(self, machine_id: str, after: int = 0, limit: int = 20000,
                      db: sqlite3.Connection | None = None) -> tuple[int, int, bytes]:
        """(entries, last id, text): up to `limit` entries with id > after as NDJSON lines (each ends with a
        newline), joined by SQLite from the lines encoded when they were written (json_object for older rows),
        never as Python tuples. Run it in a worker thread with ``db=self.reader()``."""
        row = (db or self.db).execute(
            "SELECT count(*), max(id), CAST(group_concat(j, char(10)) AS BLOB) FROM (SELECT id, coalesce(line, json_object("
            "'timestamp', ts, 'instance_id', instance_id, 'source', source, 'level', level, 'message', message)) AS j "
            "FROM logs WHERE machine_id = ? AND id > ? ORDER BY id LIMIT ?)",
            (machine_id, after, limit),
        ).fetchone()
        count = row[0]
        if not count:
            return 0, after, b""
        return count, row[1], row[2] + b"\n"  # UTF-8 bytes as SQLite holds them: no decoding and re-encoding

    def read_logs(self, machine_id: str, after: int = 0, limit: int = 5000) -> list[tuple]:
        """(id, ts, instance_id, source, level, message) with id > after, oldest first."""
        cur = self.db.execute(
            "SELECT id, ts, instance_id, source, level, message FROM logs WHERE machine_id = ? AND id > ? "
            "ORDER BY id LIMIT ?",
            (machine_id, after, limit),
        )
        cur.row_factory = None
        return cur.fetchall()
