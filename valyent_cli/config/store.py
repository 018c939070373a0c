"""The profile store: config.toml, read without a lock and modified under one."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any, Iterator

from valyent_cli.config.errors import ConfigError
from valyent_cli.config.paths import config_path
from valyent_cli.config.toml import _key_line, _read_toml, ensure_private_dir, locked, write_atomic


class ConfigStore:
    """config.toml: read without a lock (writes are atomic renames), modified under an exclusive lock.

    ``with store.edit() as doc:`` reads the current file under ``config.toml.lock``, lets the caller change the
    dict, then writes it atomically (temporary file in the same directory, fsync, rename) with mode 0600 in a
    0700 directory. Unknown keys survive a rewrite; comments do not (tomli-w cannot keep them). A file that does
    not parse is never overwritten. Concurrent writers serialise on the lock, so none loses another's change.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else config_path()

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def load(self) -> dict[str, Any]:
        doc = _read_toml(self.path)
        if doc is None:
            return {}
        return _check_config_shape(self.path, doc)

    def active(self) -> str | None:
        return self.load().get("active")

    def profiles(self) -> dict[str, dict[str, Any]]:
        return self.load().get("profiles", {})

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        self._ensure_dir()
        with self._locked():
            doc = self.load()
            before = copy.deepcopy(doc)
            yield doc
            if doc != before:
                self._write(doc)

    def _ensure_dir(self) -> None:
        ensure_private_dir(self.path.parent)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.lock_path)

    def _write(self, doc: dict[str, Any]) -> None:
        write_atomic(self.path, _ordered(doc))


def _check_config_shape(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    active = doc.get("active")
    if active is not None and not isinstance(active, str):
        raise ConfigError(path, _key_line(path, "active"), "`active` must be a profile name (a string)")
    profiles = doc.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(path, _key_line(path, "profiles"), "`profiles` must be a table of [profiles.NAME] tables")
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise ConfigError(path, _key_line(path, name, "profiles"), f"profile {name!r} must be a table")
    return doc


def _ordered(doc: dict[str, Any]) -> dict[str, Any]:
    """`active` first, then other top-level keys, then the profiles: the order a person expects to read."""
    out: dict[str, Any] = {}
    if doc.get("active") is not None:
        out["active"] = doc["active"]
    for key, value in doc.items():
        if key not in ("active", "profiles"):
            out[key] = value
    if doc.get("profiles"):
        out["profiles"] = doc["profiles"]
    return out
