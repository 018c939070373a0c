"""The store's fleets and their gateways."""

from __future__ import annotations

import json
import sqlite3

from valyent_cli.local import ids
from valyent_cli.local.store.common import dump, has_labels, now_rfc3339


class FleetQueries:
    """Fleets (by id or live name, per namespace) and gateways (per fleet), as API-shaped dicts."""

    db: sqlite3.Connection

    @staticmethod
    def fleet_json(row: sqlite3.Row) -> dict:
        out = {k: row[k] for k in ("id", "namespace", "name", "created_at", "status")}
        if row["metadata"]:
            out["metadata"] = json.loads(row["metadata"])
        return out

    def set_fleet_metadata(self, fleet_id: str, metadata: dict | None) -> None:
        self.db.execute("UPDATE fleets SET metadata = ? WHERE id = ?",
                        (dump(metadata) if metadata else None, fleet_id))

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
            fleets = [f for f in fleets if has_labels(f, labels)]
        return fleets

    def destroy_fleet(self, fleet_id: str) -> None:
        self.db.execute("BEGIN")
        self.db.execute("UPDATE fleets SET status = 'destroyed' WHERE id = ?", (fleet_id,))
        self.db.execute("DELETE FROM gateways WHERE fleet_id = ?", (fleet_id,))
        self.db.execute("COMMIT")

    def fleet_has_at_most(self, fleet_id: str, n: int) -> bool:
        """Whether the fleet has at most n machines, destroyed ones included (reads at most n + 1 index entries)."""
        return self.db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM machines WHERE fleet_id = ? LIMIT ?)", (fleet_id, n + 1)
        ).fetchone()[0] <= n

    def count_live_machines(self, fleet_id: str) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM machines WHERE fleet_id = ? AND state != 'destroyed'", (fleet_id,)
        ).fetchone()[0]

    # -- gateways -------------------------------------------------------------------------------------------------
    @staticmethod
    def gateway_json(row: sqlite3.Row) -> dict:
        gw = {k: row[k] for k in ("id", "name", "namespace", "fleet_id", "protocol", "target_port")}
        # Ravel's edge answers https; the sandbox's gateways answer plain http on loopback: say so, as the URL does
        gw["protocol"] = "http"
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

    def fleet_machine_ids(self, fleet_id: str) -> frozenset[str]:
        """The ids of the fleet's machines, destroyed ones too (a process of a machine just destroyed may still hold
        its listener for a moment: it is still the fleet's, not another namespace's or the host's)."""
        rows = self.db.execute("SELECT id FROM machines WHERE fleet_id = ?", (fleet_id,))
        return frozenset(r[0] for r in rows)

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
