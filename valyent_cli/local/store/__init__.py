"""The sandbox's state in SQLite: fleets, machines, their events and logs, gateways, namespaces and secrets.

One connection, used only from the server's event loop thread, in WAL mode with synchronous=NORMAL: every
write is its own short transaction (or one per batch of log lines), so a `kill -9` of the server leaves a
consistent database. Rows come back as API-shaped dicts.

The package: `schema` (tables and the columns added since, applied at open), `database` (the `Store`: its
connections, opening, repair, closing), one query class per resource that `Store` inherits (`fleets` with
gateways, `machines` with versions and events, `logs`, `namespaces` with secrets), and `common` (what they share).
"""

from valyent_cli.local.store.common import EMBEDDED_EVENTS, LIVE_STATES, is_disk_full, now_rfc3339
from valyent_cli.local.store.database import Store
from valyent_cli.local.store.schema import ADDED_COLUMNS, SCHEMA

__all__ = ["ADDED_COLUMNS", "EMBEDDED_EVENTS", "LIVE_STATES", "SCHEMA", "Store", "is_disk_full", "now_rfc3339"]
