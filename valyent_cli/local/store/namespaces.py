"""The store's namespaces and their secrets."""

from __future__ import annotations

import sqlite3

from valyent_cli.local import ids
from valyent_cli.local.store.common import now_rfc3339


class NamespaceQueries:
    """Namespaces (made on first use too) and the secrets of each."""

    db: sqlite3.Connection

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
