"""What every resource (``client.fleets``, ``client.machines``...) shares: its transport and the checks of answers.

A resource module imports this, ``_transport`` (for ``parse_json``), ``errors`` and ``types``, never ``client``:
``Client`` imports the resources, so that direction would close a circle.
"""

from __future__ import annotations

from typing import Any

from valyent_cli.api import errors
from valyent_cli.api._shapes import expect_array, expect_object
from valyent_cli.api._transport import Transport, parse_json


class Resource:
    """One kind of API object, reached through ``transport`` (the ``Client`` that holds the resource)."""

    def __init__(self, client: Transport) -> None:
        self._client = client

    # The checks of what the server sent: a ResponseError naming what was expected, never a KeyError later.
    @staticmethod
    def _array(data: Any, what: str) -> list[dict[str, Any]]:
        """``data`` as a list of ``what`` objects of the right shape (``api/_shapes.py``); null is an empty list."""
        return expect_array(data, what)

    @staticmethod
    def _object(data: Any, what: str) -> dict[str, Any]:
        """``data`` as one ``what`` object of the right shape (``api/_shapes.py``)."""
        return expect_object(data, what)

    @staticmethod
    def _json(response: Any) -> Any:
        """The JSON body of a response, or a ResponseError saying what came instead."""
        return parse_json(response)

    # The checks of what the caller gave, before any request.
    @staticmethod
    def _require(value: str | None, what: str) -> str:
        """``value``, or an InvalidArgument when it is empty (``a {what} is required``)."""
        if not value:
            raise errors.InvalidArgument(f"{_a(what)} {what} is required")
        return value


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def has_labels(item: Any, labels: dict[str, str] | None) -> bool:
    """Whether an object's ``metadata.labels`` hold every key and value of ``labels``."""
    if not labels:
        return True
    have = ((item.get("metadata") or {}).get("labels") or {}) if isinstance(item, dict) else {}
    return isinstance(have, dict) and all(have.get(k) == v for k, v in labels.items())


def metadata(labels: dict[str, str] | None, annotations: dict[str, str] | None) -> dict[str, Any]:
    """The ``metadata`` of a create: ``{"labels": ..., "annotations": ...}`` with what is set."""
    result: dict[str, Any] = {}
    if labels:
        result["labels"] = dict(labels)
    if annotations:
        result["annotations"] = dict(annotations)
    return result
