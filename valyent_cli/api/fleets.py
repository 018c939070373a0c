"""Fleets: groups of machines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from valyent_cli.api.client import parse_json
from valyent_cli.api.types import ApiObject

if TYPE_CHECKING:
    from valyent_cli.api.client import Client
    from valyent_cli.api.machines import Machine


class Fleet(ApiObject):
    """A fleet: ``id``, ``namespace``, ``name``, ``created_at``, ``status``."""

    __slots__ = ()

    def delete(self) -> None:
        self._client.fleets.delete(self["id"])

    def machines(self, destroyed: bool = False) -> list[Machine]:
        return self._client.machines.list(self["id"], destroyed=destroyed)


class Fleets:
    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[Fleet]:
        data = self._client.get_json(self._client.url("fleets"))
        return [Fleet(item, self._client) for item in _array(data, "fleets")]

    def create(self, name: str | dict[str, Any]) -> Fleet:
        """Create a fleet: ``create("my-fleet")`` or, as the seed SDK, ``create({"name": "my-fleet"})``."""
        payload = name if isinstance(name, dict) else {"name": name}
        response = self._client.request("POST", self._client.url("fleets"), json=payload)
        return Fleet(_object(parse_json(response), "fleet"), self._client)

    def get(self, fleet: str) -> Fleet:
        """A fleet by id or name."""
        return Fleet(_object(self._client.get_json(self._client.url("fleets", fleet)), "fleet"), self._client)

    def delete(self, fleet: str) -> None:
        self._client.request("DELETE", self._client.url("fleets", fleet))


def _array(data: Any, what: str) -> list[dict[str, Any]]:
    from valyent_cli.api._shapes import expect_array

    return expect_array(data, what)


def _object(data: Any, what: str) -> dict[str, Any]:
    from valyent_cli.api._shapes import expect_object

    return expect_object(data, what)
