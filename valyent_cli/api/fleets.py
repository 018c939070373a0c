"""Fleets: groups of machines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from valyent_cli.api._resource import Resource, has_labels, metadata
from valyent_cli.api._object import ApiObject

if TYPE_CHECKING:
    from valyent_cli.api.machines import Machine


class Fleet(ApiObject):
    """A fleet: ``id``, ``namespace``, ``name``, ``created_at``, ``status``."""

    __slots__ = ()

    def delete(self) -> None:
        self._client.fleets.delete(self["id"])

    def machines(self, destroyed: bool = False) -> list[Machine]:
        return self._client.machines.list(self["id"], destroyed=destroyed)


class Fleets(Resource):
    def list(self, labels: dict[str, str] | None = None) -> list[Fleet]:
        """The fleets; with ``labels``, only those that carry every one of them.

        Ravel declares a ``labels`` map query parameter, which the huma version it is built with (v2.27) cannot
        parse: a plain ``labels=`` makes the handler fail. The filter goes in deepObject style (``labels[K]=V``,
        what later huma versions read; ignored by v2.27), and the answer is filtered here, so it is right either way.
        """
        params = {f"labels[{key}]": value for key, value in (labels or {}).items()}
        data = self._client.get_json(self._client.url("fleets"), params=params or None)
        return [Fleet(item, self._client) for item in self._array(data, "fleets") if has_labels(item, labels)]

    def create(self, name: str | dict[str, Any], *, labels: dict[str, str] | None = None,
               annotations: dict[str, str] | None = None) -> Fleet:
        """Create a fleet: ``create("my-fleet")`` or, as the seed SDK, ``create({"name": "my-fleet"})``;
        ``labels`` and ``annotations`` become its ``metadata``."""
        payload = dict(name) if isinstance(name, dict) else {"name": name}
        meta = metadata(labels, annotations)
        if meta:
            payload["metadata"] = meta
        response = self._client.request("POST", self._client.url("fleets"), json=payload)
        return Fleet(self._object(self._json(response), "fleet"), self._client)

    def get(self, fleet: str) -> Fleet:
        """A fleet by id or name."""
        return Fleet(self._object(self._client.get_json(self._client.url("fleets", fleet)), "fleet"), self._client)

    def delete(self, fleet: str) -> None:
        self._client.request("DELETE", self._client.url("fleets", fleet))

    def update_metadata(self, fleet: str, metadata: dict[str, Any]) -> Fleet:
        """Replace the fleet's metadata (``{"labels": {...}, "annotations": {...}}``); returns the fleet."""
        data = self._client.send_json("PATCH", self._client.url("fleets", fleet, "metadata"),
                                      json={"metadata": metadata}, idempotent=True)
        return Fleet(self._object(data, "fleet"), self._client)

