"""The store's connections, its opening (schema, migrations, file modes), its repair and its closing."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from valyent_cli.local.store.common import dump, sendable
from valyent_cli.local.store.fleets import FleetQueries
from valyent_cli.local.store.logs import LogQueries
from valyent_cli.local.store.machines import MachineQueries
from valyent_cli.local.store.namespaces import NamespaceQueries
from valyent_cli.local.store.schema import migrate


class Store(FleetQueries, MachineQueries, LogQueries, NamespaceQueries):
    """The sandbox's database: one connection for the event loop, one for log batches, a read-only one per worker
    thread. The queries come from one class per resource (fleets.py, machines.py, logs.py, namespaces.py)."""

    def __init__(self, path: Path):
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        migrate(self.db)
        # it holds the secrets' values: owner only (the WAL and shared-memory files too)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.chmod(f"{path}{suffix}", 0o600)
            except OSError:
                pass
        # Log lines are written on a connection of their own: a batch that fails (a full disk) is rolled back
        # there and never leaves the lifecycle connection inside a transaction.
        self.logdb = sqlite3.connect(str(path), isolation_level=None)
        self.logdb.execute("PRAGMA synchronous=NORMAL")
        self.logdb.execute("PRAGMA busy_timeout=5000")
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def reader(self) -> sqlite3.Connection:
        """A read-only connection for the calling worker thread (WAL: it reads while the loop's one writes).

        Big reads (a fleet's machines, a long log) run in worker threads on these, off the event loop."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def repair(self) -> int:
        """Make every stored JSON document one that can be sent: a config or event payload that is not valid
        JSON, or holds a lone surrogate (stored by a server before they were refused) or NaN, would break every
        answer that includes it. Returns how many rows were rewritten; called at start."""
        fixed = 0
        suspect = ("json_valid({c}) = 0 OR {c} GLOB '*\\u[dD][89abcdefABCDEF]*' OR {c} GLOB '*NaN*' "
                   "OR {c} GLOB '*Infinity*'")
        for table, key, col in (("machines", "id", "config"), ("events", "seq", "payload")):
            rows = self.db.execute(f"SELECT {key}, {col} FROM {table} WHERE " + suspect.format(c=col)).fetchall()
            for key_value, text in rows:
                clean = dump(sendable(text))
                if clean != text:
                    self.db.execute(f"UPDATE {table} SET {col} = ? WHERE {key} = ?", (clean, key_value))
                    fixed += 1
        return fixed

    def compact(self) -> int:
        """Make the JSON documents stored before they were written compact (`"image": "x"`) compact: answers embed
        them as they are, as Ravel's are, and the CLI passes a compact answer through (`machines list --json`).
        SQLite's json() minifies; documents already compact are not touched. Returns how many; called at start."""
        changed = 0
        for table, col in (("machines", "config"), ("machines", "metadata"), ("versions", "config"),
                           ("versions", "resources"), ("events", "payload"), ("fleets", "metadata")):
            changed += self.db.execute(
                f"UPDATE {table} SET {col} = json({col}) "
                f"WHERE ({col} GLOB '*\": *' OR {col} GLOB '*, \"*') AND json_valid({col})").rowcount
        return changed

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._readers.clear()
        self.logdb.close()
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self.db.close()
