"""Labels and annotations: parsed from `K=V` words and checked against Ravel's limits (api/metadata.go,
ravel/validation.go) before anything is sent."""

from __future__ import annotations

import re
from typing import Any

from valyent_cli.cli.errors import UsageError
from valyent_cli.cli.validate import text

MAX_LABELS = 64
MAX_ANNOTATIONS = 32
MAX_LABEL_KEY = 63
MAX_LABEL_VALUE = 255
MAX_ANNOTATION_KEY = 253
MAX_ANNOTATION_VALUE = 64 * 1024
RESERVED_PREFIX = "ravel."
_KEY = r"^[A-Za-z0-9_./-]+$"  # compiled by `re` on first use: most runs check no key


def _key(key: str, flag: str, kind: str, limit: int) -> str:
    if not key:
        raise UsageError(f"{flag}: the {kind} key must not be empty")
    if len(key) > limit:
        raise UsageError(f"{flag}: {kind} key {key[:80]!r} is longer than {limit} characters")
    if key.startswith(RESERVED_PREFIX):
        raise UsageError(f"{flag}: {kind} key {key!r}: the prefix {RESERVED_PREFIX!r} is reserved for the server")
    if not re.match(_KEY, key):
        raise UsageError(f"{flag}: {kind} key {key!r} may only hold letters, digits, '-', '_', '.' and '/'")
    return key


def pairs(values: list[str] | None, flag: str, kind: str = "label") -> dict[str, str]:
    """``["K=V", ...]`` as a dict, each key and value checked; the last of a repeated key wins."""
    key_limit, value_limit, count = ((MAX_LABEL_KEY, MAX_LABEL_VALUE, MAX_LABELS) if kind == "label"
                                     else (MAX_ANNOTATION_KEY, MAX_ANNOTATION_VALUE, MAX_ANNOTATIONS))
    out: dict[str, str] = {}
    for raw in values or []:
        text(raw, flag)
        key, sep, value = raw.partition("=")
        if not sep:
            raise UsageError(f"{flag}: {raw[:80]!r} is not KEY=VALUE")
        _key(key, flag, kind, key_limit)
        if len(value.encode()) > value_limit:
            raise UsageError(f"{flag}: the value of {key!r} is longer than {value_limit} bytes")
        out[key] = value
    check_count(out, flag, kind, count)
    return out


def check_count(items: dict[str, str], flag: str, kind: str, limit: int | None = None) -> None:
    limit = limit if limit is not None else (MAX_LABELS if kind == "label" else MAX_ANNOTATIONS)
    if len(items) > limit:
        raise UsageError(f"{flag}: at most {limit} {kind}s, not {len(items)}")


def edits(words: list[str], flag: str = "LABEL") -> tuple[dict[str, str], list[str]]:
    """kubectl's syntax: ``K=V`` sets, ``K-`` removes. Returns (to set, to remove)."""
    to_set: dict[str, str] = {}
    to_remove: list[str] = []
    for word in words:
        text(word, flag)
        if "=" not in word and word.endswith("-"):
            to_remove.append(_key(word[:-1], flag, "label", MAX_LABEL_KEY))
        else:
            to_set.update(pairs([word], flag))
    clash = set(to_set) & set(to_remove)
    if clash:
        raise UsageError(f"{flag}: {sorted(clash)[0]!r} is both set and removed")
    return to_set, to_remove


def merged(current: Any, labels: dict[str, str], remove: list[str], annotations: dict[str, str] | None = None,
           remove_annotations: list[str] | None = None) -> dict[str, Any]:
    """The object's metadata with the edits applied (Ravel's PATCH replaces the metadata whole)."""
    current = current if isinstance(current, dict) else {}
    new_labels = {**(current.get("labels") or {}), **labels}
    for key in remove:
        new_labels.pop(key, None)
    new_annotations = {**(current.get("annotations") or {}), **(annotations or {})}
    for key in remove_annotations or []:
        new_annotations.pop(key, None)
    check_count(new_labels, "LABEL", "label")
    check_count(new_annotations, "--annotation", "annotation")
    metadata: dict[str, Any] = {}
    if new_labels:
        metadata["labels"] = new_labels
    if new_annotations:
        metadata["annotations"] = new_annotations
    return metadata


def show(labels: Any) -> str | None:
    if not isinstance(labels, dict) or not labels:
        return None
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
