"""What the sandbox server checks and tidies before it starts, holding its data dir's lock.

A start that cannot go on says why in one line that names the file and the way out (a damaged `state.db`, a full
disk), never with a traceback; uploads a killed server left half-written are removed.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def no_space(path: Path | str) -> str:
    return (f"no space left on the device that holds {path}: free some space (or use another --data-dir), then run "
            "`valyent local start` again")


def describe_os_error(exc: OSError, path: Path | str) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return no_space(path)
    return f"cannot write {path}: {exc.strerror or exc}"


def check_state(data_dir: Path) -> None:
    """Open `state.db` as the server will (schema included), so that a damaged or unwritable one is reported
    here, plainly, rather than as a traceback from the server's start-up."""
    import sqlite3

    from valyent_cli.local.errors import ServeError
    from valyent_cli.local.store import Store

    db = data_dir / "state.db"
    try:
        Store(db).close()
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "full" in text or ("disk I/O error" in text and _low_on_space(data_dir)):
            raise ServeError(no_space(db)) from None
        raise ServeError(f"cannot open the sandbox's state {db}: {text}; check that it is yours and writable") from None
    except sqlite3.DatabaseError as exc:
        raise ServeError(
            f"the sandbox's state {db} is damaged ({exc}). Move it away to start with an empty sandbox (the machines "
            f"it recorded are forgotten; their files stay in {data_dir / 'machines'}): mv {db} {db}.broken"
        ) from None
    except OSError as exc:
        raise ServeError(describe_os_error(exc, db)) from None


def _low_on_space(data_dir: Path, below: int = 8 * 1024 * 1024) -> bool:
    """Whether the disk is (nearly) full: SQLite says "disk I/O error" when it cannot grow its journal files."""
    try:
        st = os.statvfs(data_dir)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < below


def remove_stale_uploads(data_dir: Path) -> int:
    """Remove the temporary files of uploads that never finished (a server killed mid-upload). Only a server
    start may do this: it holds the data dir's lock, so no upload is in flight. Returns how many it removed."""
    removed = 0
    for pattern in ("machines/*/uploads/upload-*", "uploads/upload-*"):
        for path in data_dir.glob(pattern):
            try:
                if path.is_file() and not path.is_symlink():
                    os.unlink(path)
                    removed += 1
            except OSError:
                pass
    return removed
