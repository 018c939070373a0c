"""The sandbox's state in SQLite: fleets, machines, their events and logs, gateways.

One connection, used only from the server's event loop thread, in WAL mode with synchronous=NORMAL: every
write is its own short transaction (or one per batch of log lines), so a `kill -9` of the server leaves a
consistent database. Rows come back as API-shaped dicts.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from json.encoder import encode_basestring_ascii as _json_str

from valyent_cli.local import ids

SCHEMA = """
CREATE TABLE IF NOT EXISTS fleets (
    id TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL,
    created_at TEXT NOT NULL, status TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS fleets_live_name ON fleets(namespace, name) WHERE status = 'active';
CREATE TABLE IF NOT EXISTS machines (
    id TEXT PRIMARY KEY, namespace TEXT NOT NULL, fleet_id TEXT NOT NULL, instance_id TEXT NOT NULL,
    machine_version TEXT NOT NULL, region TEXT NOT NULL, config TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, state TEXT NOT NULL,
    gateway_enabled INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,                       -- leader (and process group) of the running process
    restart_count INTEGER NOT NULL DEFAULT 0,
    last_exit_code INTEGER,
    resume INTEGER NOT NULL DEFAULT 0  -- exited without the user asking: apply the restart policy on next start
);
CREATE INDEX IF NOT EXISTS machines_fleet ON machines(fleet_id, id);
CREATE INDEX IF NOT EXISTS machines_state ON machines(state);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, machine_id TEXT NOT NULL, instance_id TEXT NOT NULL,
    status TEXT NOT NULL, type TEXT NOT NULL, origin TEXT NOT NULL, payload TEXT NOT NULL, timestamp TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_machine ON events(machine_id, seq);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY, machine_id TEXT NOT NULL, ts INTEGER NOT NULL, instance_id TEXT NOT NULL,
    source TEXT NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL,
    line TEXT  -- the entry as the API sends it (one NDJSON line), encoded once when written; NULL in older rows
);
CREATE INDEX IF NOT EXISTS logs_machine ON logs(machine_id, id);
CREATE TABLE IF NOT EXISTS gateways (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, namespace TEXT NOT NULL, fleet_id TEXT NOT NULL,
    protocol TEXT NOT NULL, target_port INTEGER NOT NULL, created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS gateways_name ON gateways(fleet_id, name);
CREATE TABLE IF NOT EXISTS namespaces (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (
    id TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS secrets_name ON secrets(namespace, name);
CREATE TABLE IF NOT EXISTS versions (
    id TEXT PRIMARY KEY, machine_id TEXT NOT NULL, namespace TEXT NOT NULL, config TEXT NOT NULL,
    resources TEXT NOT NULL, seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_machine ON versions(machine_id, seq);
"""

# Columns added after the first release: (table, column, declaration), added to an older database at open.
ADDED_COLUMNS = (
    ("fleets", "metadata", "TEXT"),
    ("machines", "metadata", "TEXT"),
    ("machines", "health", "TEXT"),
    ("machines", "secret_env", "TEXT"),  # secrets resolved at create: never part of an API answer
    ("gateways", "local_port", "INTEGER"),  # the gateway's loopback listener (its `url`)
)

LIVE_STATES = ("created", "preparing", "starting", "running", "stopping", "stopped", "destroying")
EMBEDDED_EVENTS = 20  # a Machine carries its latest events; /events has them all


def now_rfc3339(ts: float | None = None) -> str:
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sendable(text: Any) -> Any:
    """A stored JSON document made sendable: lone surrogates become U+FFFD, NaN and infinities null, and what
    does not parse at all an empty object."""
    def clean(v: Any) -> Any:
        if isinstance(v, str):
            return _SURROGATE.sub("\ufffd", v) if _has_surrogate(v) else v
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return None
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {clean(k): clean(x) for k, x in v.items()}
        return v

    try:
        return clean(json.loads(text))
    except (TypeError, ValueError, RecursionError):
        return {}


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(v: str) -> bool:
    try:
        v.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def is_disk_full(exc: BaseException) -> bool:
    """A write that failed for want of space: SQLite's SQLITE_FULL, or ENOSPC/EDQUOT from the file system."""
    import errno

    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == 13 or "disk is full" in str(exc)  # 13: SQLITE_FULL
    return False


class Store:
    def __init__(self, path: Path):
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        for table, column, decl in ADDED_COLUMNS:
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        # it holds the secrets' values: owner only (the WAL and shared-memory files too)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.chmod(f"{path}{suffix}", 0o600)
            except OSError:
                pass
        if "line" not in {r[1] for r in self.db.execute("PRAGMA table_info(logs)")}:  # a database from before it
            self.db.execute("ALTER TABLE logs ADD COLUMN line TEXT")
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
                clean = json.dumps(_sendable(text))
                if clean != text:
                    self.db.execute(f"UPDATE {table} SET {col} = ? WHERE {key} = ?", (clean, key_value))
                    fixed += 1
        return fixed

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

    # -- fleets -------------------------------------------------------------------------------------------
    @staticmethod
    def fleet_json(row: sqlite3.Row) -> dict:
        out = {k: row[k] for k in ("id", "namespace", "name", "created_at", "status")}
        if row["metadata"]:
            out["metadata"] = json.loads(row["metadata"])
        return out

    def set_fleet_metadata(self, fleet_id: str, metadata: dict | None) -> None:
        self.db.execute("UPDATE fleets SET metadata = ? WHERE id = ?",
                        (json.dumps(metadata) if metadata else None, fleet_id))

    def create_fleet(self, namespace: str, name: str) -> dict:
        """Raises sqlite3.IntegrityError when the name is taken in the namespace."""
        fid = ids.fleet_id()
        self.db.execute(
            "INSERT INTO fleets (id, namespace, name, created_at, status) VALUES (?, ?, ?, ?, 'active')",
            (fid, namespace, name, now_rfc3339()),
        )
        return self.get_fleet(namespace, fid)

    def get_fleet(self, namespace: str, ref: str) -> dict | None:
        row = self.db.execute(
            "SELECT * FROM fleets WHERE namespace = ? AND status = 'active' AND (id = ? OR name = ?) "
            "ORDER BY id = ? DESC LIMIT 1",
            (namespace, ref, ref, ref),
        ).fetchone()
        return self.fleet_json(row) if row else None

    def list_fleets(self, namespace: str, labels: dict[str, str] | None = None) -> list[dict]:
        rows = self.db.execute(
            "SELECT * FROM fleets WHERE namespace = ? AND status = 'active' ORDER BY created_at, id", (namespace,)
        )
        fleets = [self.fleet_json(r) for r in rows]
        if labels:
            fleets = [f for f in fleets if _has_labels(f, labels)]
        return fleets

    def destroy_fleet(self, fleet_id: str) -> None:
        self.db.execute("BEGIN")
        self.db.execute("UPDATE fleets SET status = 'destroyed' WHERE id = ?", (fleet_id,))
        self.db.execute("DELETE FROM gateways WHERE fleet_id = ?", (fleet_id,))
        self.db.execute("COMMIT")

    def count_live_machines(self, fleet_id: str) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM machines WHERE fleet_id = ? AND state != 'destroyed'", (fleet_id,)
        ).fetchone()[0]

    # -- machines -----------------------------------------------------------------------------------------
    def insert_machine(self, *, namespace: str, fleet_id: str, region: str, config: dict,
                       metadata: dict | None = None, secret_env: dict | None = None, health: str | None = None,
                       resources: dict | None = None) -> str:
        """The machine and its first version, in one transaction."""
        mid = ids.machine_id()
        version = ids.ulid()
        now = now_rfc3339()
        self.db.execute("BEGIN")
        try:
            self.db.execute(
                "INSERT INTO machines (id, namespace, fleet_id, instance_id, machine_version, region, config, "
                "created_at, updated_at, state, metadata, secret_env, health) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'created', ?, ?, ?)",
                (mid, namespace, fleet_id, ids.ulid(), version, region, json.dumps(config), now, now,
                 json.dumps(metadata) if metadata else None, json.dumps(secret_env) if secret_env else None, health),
            )
            self.db.execute(
                "INSERT INTO versions (id, machine_id, namespace, config, resources, seq) VALUES (?, ?, ?, ?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM versions WHERE machine_id = ?))",
                (version, mid, namespace, json.dumps(config), json.dumps(resources or {}), mid),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return mid

    def list_versions(self, machine_id: str) -> list[dict]:
        rows = self.db.execute("SELECT * FROM versions WHERE machine_id = ? ORDER BY seq", (machine_id,))
        return [{"id": r["id"], "machine_id": r["machine_id"], "namespace": r["namespace"],
                 "config": json.loads(r["config"]), "resources": json.loads(r["resources"])} for r in rows]

    def set_machine_metadata(self, machine_id: str, metadata: dict | None) -> None:
        self.db.execute("UPDATE machines SET metadata = ?, updated_at = ? WHERE id = ?",
                        (json.dumps(metadata) if metadata else None, now_rfc3339(), machine_id))

    def machine_row(self, machine_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM machines WHERE id = ?", (machine_id,)).fetchone()

    def machine_json(self, row: sqlite3.Row, events: list[dict] | None = None) -> dict:
        if events is None:
            events = self.list_events(row["id"], latest=EMBEDDED_EVENTS)
        return {
            "id": row["id"],
            "namespace": row["namespace"],
            "fleet": row["fleet_id"],
            "instance_id": row["instance_id"],
            "machine_version": row["machine_version"],
            "region": row["region"],
            "config": json.loads(row["config"]),
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "events": events,
            "state": row["state"],
            "gateway_enabled": bool(row["gateway_enabled"]),
            **({"health": row["health"]} if row["health"] else {}),
            **({"metadata": json.loads(row["metadata"])} if row["metadata"] else {}),
        }

    def get_machine(self, machine_id: str) -> dict | None:
        row = self.machine_row(machine_id)
        return self.machine_json(row) if row else None

    def list_machines(self, fleet_id: str, include_destroyed: bool = False,
                      labels: dict[str, str] | None = None) -> list[dict]:
        sql = "SELECT * FROM machines WHERE fleet_id = ?"
        if not include_destroyed:
            sql += " AND state != 'destroyed'"
        rows = self.db.execute(sql + " ORDER BY id", (fleet_id,)).fetchall()
        if labels:
            rows = [r for r in rows if _has_labels({"metadata": json.loads(r["metadata"] or "{}")}, labels)]
        if not rows:
            return []
        # The latest events of every machine in one query, not one query per machine.
        events: dict[str, list[dict]] = {r["id"]: [] for r in rows}
        placeholders = ",".join("?" * len(rows))
        for ev in self.db.execute(
            f"SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY machine_id ORDER BY seq DESC) AS rn "
            f"FROM events WHERE machine_id IN ({placeholders})) WHERE rn <= ? ORDER BY seq",
            [r["id"] for r in rows] + [EMBEDDED_EVENTS],
        ):
            events[ev["machine_id"]].append(self.event_json(ev))
        return [self.machine_json(r, events[r["id"]]) for r in rows]

    def list_machines_body(self, fleet_id: str, include_destroyed: bool = False,
                           db: sqlite3.Connection | None = None, labels: dict[str, str] | None = None) -> bytes:
        """The JSON array of :meth:`list_machines`, built as text by SQLite: the stored config and event payloads
        are JSON already and go in as they are, never decoded and re-encoded (5,000 machines: ~4x faster).

        The shape must stay :meth:`machine_json`'s (tests/test_sandbox_perf.py compares the two for every field).
        A machine's latest events are concatenated from a subquery ordered by seq, which SQLite reads in that
        order. Run it in a worker thread with ``db=self.reader()``."""
        db = db or self.db
        live = "" if include_destroyed else " AND m.state != 'destroyed'"
        selected, params = "", []
        for key, value in (labels or {}).items():  # Ravel's label filter: every label must match
            selected += " AND json_extract(m.metadata, ?) = ?"
            params += ['$.labels."' + key.replace('"', '\\"') + '"', value]
        cur = db.execute(
            """SELECT CAST('{"id":' || json_quote(m.id) || ',"namespace":' || json_quote(m.namespace)
                || ',"fleet":' || json_quote(m.fleet_id) || ',"instance_id":' || json_quote(m.instance_id)
                || ',"machine_version":' || json_quote(m.machine_version) || ',"region":' || json_quote(m.region)
                || ',"config":' || m.config || ',"created_at":' || json_quote(m.created_at)
                || ',"updated_at":' || json_quote(m.updated_at) || ',"events":[' || coalesce((
                    SELECT group_concat(ej, ',') FROM (SELECT ej FROM (
                        SELECT e.seq, '{"id":' || json_quote(e.id) || ',"machine_id":' || json_quote(e.machine_id)
                            || ',"instance_id":' || json_quote(e.instance_id) || ',"status":' || json_quote(e.status)
                            || ',"type":' || json_quote(e.type) || ',"origin":' || json_quote(e.origin)
                            || ',"payload":' || e.payload || ',"timestamp":' || json_quote(e.timestamp) || '}' AS ej
                        FROM events e WHERE e.machine_id = m.id ORDER BY e.seq DESC LIMIT ?) ORDER BY seq)), '')
                || '],"state":' || json_quote(m.state) || ',"gateway_enabled":'
                || CASE WHEN m.gateway_enabled THEN 'true' ELSE 'false' END
                || CASE WHEN coalesce(m.health, '') != '' THEN ',"health":' || json_quote(m.health) ELSE '' END
                || CASE WHEN coalesce(m.metadata, '') != '' THEN ',"metadata":' || m.metadata ELSE '' END
                || '}' AS BLOB)
            FROM machines m WHERE m.fleet_id = ?""" + live + selected + " ORDER BY m.id",
            (EMBEDDED_EVENTS, fleet_id, *params),
        )
        cur.row_factory = None
        return b"[" + b",".join([row[0] for row in cur]) + b"]"

    def machines_in_states(self, states: Iterable[str]) -> list[sqlite3.Row]:
        states = list(states)
        return self.db.execute(
            f"SELECT * FROM machines WHERE state IN ({','.join('?' * len(states))}) ORDER BY id", states
        ).fetchall()

    def machines_to_resume(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM machines WHERE resume = 1 AND state = 'stopped' ORDER BY id").fetchall()

    def update_machine(self, machine_id: str, **fields: Any) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE machines SET {cols} WHERE id = ?", [*fields.values(), machine_id])

    # -- events -------------------------------------------------------------------------------------------
    @staticmethod
    def event_json(row: sqlite3.Row) -> dict:
        return {
            "id": row["id"],
            "machine_id": row["machine_id"],
            "instance_id": row["instance_id"],
            "status": row["status"],
            "type": row["type"],
            "origin": row["origin"],
            "payload": json.loads(row["payload"]),
            "timestamp": row["timestamp"],
        }

    def record_event(
        self, machine_id: str, type_: str, status: str, origin: str = "ravel", payload: dict | None = None,
        **machine_fields: Any,
    ) -> dict:
        """Append an event and move the machine to `status` (plus other column updates), atomically."""
        row = self.machine_row(machine_id)
        now = now_rfc3339()
        event = {
            "id": ids.ulid(),
            "machine_id": machine_id,
            "instance_id": row["instance_id"],
            "status": status,
            "type": type_,
            "origin": origin,
            "payload": payload or {},
            "timestamp": now,
        }
        fields = {"state": status, "updated_at": now, **machine_fields}
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute("BEGIN")
        try:
            self.db.execute(
                "INSERT INTO events (id, machine_id, instance_id, status, type, origin, payload, timestamp) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (event["id"], machine_id, event["instance_id"], status, type_, origin,
                 json.dumps(event["payload"]), now),
            )
            self.db.execute(f"UPDATE machines SET {cols} WHERE id = ?", [*fields.values(), machine_id])
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # SQLite may have rolled it back itself (a full disk): keep the real error
                self.db.execute("ROLLBACK")
            raise
        return event

    def list_events(self, machine_id: str, latest: int | None = None) -> list[dict]:
        if latest is None:
            rows = self.db.execute("SELECT * FROM events WHERE machine_id = ? ORDER BY seq", (machine_id,))
        else:
            rows = self.db.execute(
                "SELECT * FROM (SELECT * FROM events WHERE machine_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (machine_id, latest),
            )
        return [self.event_json(r) for r in rows]

    # -- logs ---------------------------------------------------------------------------------------------
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

    # -- gateways -----------------------------------------------------------------------------------------
    @staticmethod
    def gateway_json(row: sqlite3.Row) -> dict:
        gw = {k: row[k] for k in ("id", "name", "namespace", "fleet_id", "protocol", "target_port")}
        if row["local_port"]:  # the sandbox's addition: where the gateway answers, on loopback
            gw["url"] = f"http://127.0.0.1:{row['local_port']}"
        return gw

    def all_gateways(self) -> list[dict]:
        rows = self.db.execute("SELECT * FROM gateways ORDER BY id")
        return [{**self.gateway_json(r), "local_port": r["local_port"]} for r in rows]

    def gateway_by_id(self, gateway_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM gateways WHERE id = ?", (gateway_id,)).fetchone()
        return self.gateway_json(row) if row else None

    def set_gateway_port(self, gateway_id: str, port: int) -> None:
        self.db.execute("UPDATE gateways SET local_port = ? WHERE id = ?", (port, gateway_id))

    def gateway_backends(self, fleet_id: str) -> list[str]:
        """The ids of the fleet's running machines whose gateway is enabled."""
        rows = self.db.execute(
            "SELECT id FROM machines WHERE fleet_id = ? AND state = 'running' AND gateway_enabled = 1 ORDER BY id",
            (fleet_id,))
        return [r[0] for r in rows]

    def create_gateway(self, namespace: str, fleet_id: str, name: str, target_port: int) -> dict:
        gid = ids.gateway_id()
        self.db.execute(
            "INSERT INTO gateways (id, name, namespace, fleet_id, protocol, target_port, created_at) "
            "VALUES (?, ?, ?, ?, 'https', ?, ?)",
            (gid, name, namespace, fleet_id, target_port, now_rfc3339()),
        )
        return self.get_gateway(fleet_id, gid)

    def get_gateway(self, fleet_id: str, ref: str) -> dict | None:
        row = self.db.execute(
            "SELECT * FROM gateways WHERE fleet_id = ? AND (id = ? OR name = ?) ORDER BY id = ? DESC LIMIT 1",
            (fleet_id, ref, ref, ref),
        ).fetchone()
        return self.gateway_json(row) if row else None

    def list_gateways(self, fleet_id: str) -> list[dict]:
        rows = self.db.execute("SELECT * FROM gateways WHERE fleet_id = ? ORDER BY id", (fleet_id,))
        return [self.gateway_json(r) for r in rows]

    def delete_gateway(self, gateway_id: str) -> None:
        self.db.execute("DELETE FROM gateways WHERE id = ?", (gateway_id,))

    # -- namespaces and secrets ----------------------------------------------------------------------------
    def ensure_namespace(self, name: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?, ?)", (name, now_rfc3339()))

    def create_namespace(self, name: str) -> dict:
        """Raises sqlite3.IntegrityError when it exists."""
        self.db.execute("INSERT INTO namespaces (name, created_at) VALUES (?, ?)", (name, now_rfc3339()))
        return self.get_namespace(name)

    def get_namespace(self, name: str) -> dict | None:
        row = self.db.execute("SELECT * FROM namespaces WHERE name = ?", (name,)).fetchone()
        return {"name": row["name"], "created_at": row["created_at"]} if row else None

    def list_namespaces(self) -> list[dict]:
        return [{"name": r["name"], "created_at": r["created_at"]}
                for r in self.db.execute("SELECT * FROM namespaces ORDER BY created_at, name")]

    def namespace_in_use(self, name: str) -> bool:
        return self.db.execute(
            "SELECT 1 FROM fleets WHERE namespace = ? AND status = 'active' LIMIT 1", (name,)).fetchone() is not None

    def delete_namespace(self, name: str) -> None:
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM secrets WHERE namespace = ?", (name,))
        self.db.execute("DELETE FROM namespaces WHERE name = ?", (name,))
        self.db.execute("COMMIT")

    @staticmethod
    def secret_json(row: sqlite3.Row) -> dict:
        return {k: row[k] for k in ("id", "name", "namespace", "created_at", "updated_at")}  # never the value

    def create_secret(self, namespace: str, name: str, value: str) -> dict:
        now = now_rfc3339()
        self.db.execute(
            "INSERT INTO secrets (id, namespace, name, value, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (ids.ulid(), namespace, name, value, now, now),
        )
        return self.get_secret(namespace, name)

    def get_secret(self, namespace: str, name: str) -> dict | None:
        row = self.db.execute("SELECT * FROM secrets WHERE namespace = ? AND name = ?", (namespace, name)).fetchone()
        return self.secret_json(row) if row else None

    def secret_value(self, namespace: str, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM secrets WHERE namespace = ? AND name = ?", (namespace, name)).fetchone()
        return row[0] if row else None

    def list_secrets(self, namespace: str) -> list[dict]:
        rows = self.db.execute("SELECT * FROM secrets WHERE namespace = ? ORDER BY name", (namespace,))
        return [self.secret_json(r) for r in rows]

    def update_secret(self, namespace: str, name: str, value: str) -> None:
        self.db.execute("UPDATE secrets SET value = ?, updated_at = ? WHERE namespace = ? AND name = ?",
                        (value, now_rfc3339(), namespace, name))

    def delete_secret(self, namespace: str, name: str) -> None:
        self.db.execute("DELETE FROM secrets WHERE namespace = ? AND name = ?", (namespace, name))


def _has_labels(obj: dict, wanted: dict[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())
