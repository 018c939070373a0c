"""The store's machines, their versions and their events."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable

from valyent_cli.local import ids
from valyent_cli.local.store.common import EMBEDDED_EVENTS, dump, has_labels, now_rfc3339


class MachineQueries:
    """Machines (rows and API-shaped dicts, the list as ready-made JSON text), their versions and events."""

    db: sqlite3.Connection

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
                (mid, namespace, fleet_id, ids.ulid(), version, region, dump(config), now, now,
                 dump(metadata) if metadata else None, dump(secret_env) if secret_env else None, health),
            )
            self.db.execute(
                "INSERT INTO versions (id, machine_id, namespace, config, resources, seq) VALUES (?, ?, ?, ?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM versions WHERE machine_id = ?))",
                (version, mid, namespace, dump(config), dump(resources or {}), mid),
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
                        (dump(metadata) if metadata else None, now_rfc3339(), machine_id))

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
            rows = [r for r in rows if has_labels({"metadata": json.loads(r["metadata"] or "{}")}, labels)]
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

        The shape must stay :meth:`machine_json`'s (tests/sandbox/test_sandbox_perf.py compares the two for every field).
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

    # -- events ---------------------------------------------------------------------------------------------------
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
                 dump(event["payload"]), now),
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
