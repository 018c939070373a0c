"""Release records, kept in the fleet's annotations so that every client of the fleet reads the same history.

One annotation per release: key ``valyent.releases/APP/N``, value the record as compact JSON (number, image, the
full create payload, strategy, status, times, who and from where). Ravel allows 32 annotations per fleet and 64 KiB
per value (api/metadata.go): the store keeps the last :data:`KEEP` releases of each app, fewer when other
annotations of the fleet leave less room, and never writes a record over the value limit (the payload is dropped
from a record that would be, which then cannot be rolled back to). Metadata is replaced as a whole by
``PATCH /fleets/{fleet}/metadata``: each write reads the fleet first and keeps its labels and other annotations.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from valyent_cli.api import Client

#: how many releases of an app the fleet keeps (the oldest are dropped first)
KEEP = 10
#: Ravel's limits (api/metadata.go)
MAX_ANNOTATIONS = 32
MAX_VALUE = 64 * 1024
PREFIX = "valyent.releases/"

SUCCEEDED, FAILED, ROLLED_BACK, RUNNING, INTERRUPTED = "succeeded", "failed", "rolled-back", "running", "interrupted"

#: CI variables that say who deployed and from where (GitHub Actions, GitLab CI, generic)
_CI = {
    "GITHUB_ACTIONS": ("github-actions", "GITHUB_ACTOR", "GITHUB_REPOSITORY", "GITHUB_SHA", "GITHUB_RUN_ID"),
    "GITLAB_CI": ("gitlab-ci", "GITLAB_USER_LOGIN", "CI_PROJECT_PATH", "CI_COMMIT_SHA", "CI_PIPELINE_ID"),
}


def key(app: str, number: int) -> str:
    return f"{PREFIX}{app}/{number}"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def origin() -> dict[str, str]:
    """Who deploys, from where: the CI's variables when present, else the local user and host."""
    for marker, (ci, actor, repo, sha, run) in _CI.items():
        if os.environ.get(marker):
            found = {"ci": ci, "actor": os.environ.get(actor), "repository": os.environ.get(repo),
                     "commit": os.environ.get(sha), "run": os.environ.get(run)}
            return {k: v for k, v in found.items() if v}
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment: say nothing
        user = ""
    result = {"host": socket.gethostname()}
    if user:
        result["actor"] = user
    if os.environ.get("CI"):
        result["ci"] = "ci"
    return result


def new_record(app: str, number: int, payload: dict[str, Any], strategy: str, *,
               rollback_of: int | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "app": app, "release": number, "status": RUNNING, "image": (payload.get("config") or {}).get("image"),
        "strategy": strategy, "created_at": now(), "finished_at": None, "by": origin(), "payload": payload,
    }
    if rollback_of is not None:
        record["rollback_of"] = rollback_of
    return record


class Releases:
    """The release records of one app of one fleet."""

    def __init__(self, client: Client, fleet: str, app: str) -> None:
        self.client = client
        self.fleet = fleet
        self.app = app

    def _metadata(self) -> dict[str, Any]:
        fleet = self.client.fleets.get(self.fleet)
        metadata = fleet.get("metadata") or {}
        return {"labels": dict(metadata.get("labels") or {}), "annotations": dict(metadata.get("annotations") or {})}

    def list(self) -> list[dict[str, Any]]:
        """The app's records, newest first (records that do not parse are skipped)."""
        return self._records(self._metadata()["annotations"])

    def _records(self, annotations: dict[str, str]) -> list[dict[str, Any]]:
        records = []
        prefix = f"{PREFIX}{self.app}/"
        for name, value in annotations.items():
            if not name.startswith(prefix):
                continue
            try:
                record = json.loads(value)
            except (TypeError, ValueError):
                continue
            if isinstance(record, dict) and isinstance(record.get("release"), int):
                records.append(record)
        return sorted(records, key=lambda r: r["release"], reverse=True)

    def get(self, number: int) -> dict[str, Any] | None:
        return next((r for r in self.list() if r["release"] == number), None)

    def next_number(self, running: list[int | None]) -> int:
        """One more than any release recorded or labelled on a running machine."""
        known = [r["release"] for r in self.list()] + [n for n in running if n is not None]
        return max(known, default=0) + 1

    def save(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write (or overwrite) a record; drop this app's oldest ones beyond what the fleet has room for."""
        metadata = self._metadata()
        annotations = metadata["annotations"]
        annotations[key(self.app, record["release"])] = _encode(record)
        mine = sorted((r["release"] for r in self._records(annotations)), reverse=True)
        others = len([k for k in annotations if not k.startswith(f"{PREFIX}{self.app}/")])
        room = max(1, min(KEEP, MAX_ANNOTATIONS - others))
        for number in mine[room:]:
            annotations.pop(key(self.app, number), None)
        self.client.fleets.update_metadata(self.fleet, metadata)
        return record

    def update(self, number: int, **changes: Any) -> dict[str, Any] | None:
        record = self.get(number)
        if record is None:
            return None
        record.update(changes)
        return self.save(record)


def _encode(record: dict[str, Any]) -> str:
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > MAX_VALUE:
        record = {**record, "payload": None, "note": "payload too large to record"}
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    return text
