"""The sandbox database's tables, and the columns added to them since the first release: a database of any
earlier version is brought up to date when it is opened (:func:`migrate`)."""

from __future__ import annotations

import sqlite3

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


def migrate(db: sqlite3.Connection) -> None:
    """Create what is missing: the tables and indexes of :data:`SCHEMA`, then every column of
    :data:`ADDED_COLUMNS` an older database lacks."""
    db.executescript(SCHEMA)
    for table, column, decl in ADDED_COLUMNS:
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
    if "line" not in {r[1] for r in db.execute("PRAGMA table_info(logs)")}:  # a database from before it
        db.execute("ALTER TABLE logs ADD COLUMN line TEXT")
