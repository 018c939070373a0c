"""Gateways: public network access to a port of a fleet's machines."""

from __future__ import annotations

from typing import Any

from valyent_cli.api._resource import Resource
from valyent_cli.api._object import ApiObject


class Gateway(ApiObject):
    """A gateway: ``id``, ``name``, ``namespace``, ``fleet_id``, ``protocol``, ``target_port``, and on the local
    sandbox ``url`` (where it answers, on loopback)."""

    __slots__ = ()

    def delete(self) -> None:
        self._client.gateways.delete(self["fleet_id"], self["id"])


class Gateways(Resource):
    def create(self, fleet: str, payload: dict[str, Any] | None = None, *, name: str | None = None,
               target_port: int | None = None) -> Gateway:
        """``create(fleet, {"name": "web", "target_port": 8080})`` or ``create(fleet, name=..., target_port=...)``."""
        body = dict(payload or {})
        if name is not None:
            body["name"] = name
        if target_port is not None:
            body["target_port"] = target_port
        data = self._client.send_json("POST", self._client.url("fleets", fleet, "gateways"), json=body)
        return Gateway(self._object(data, "gateway"), self._client)

    def list(self, fleet: str) -> list[Gateway]:
        data = self._client.get_json(self._client.url("fleets", fleet, "gateways"))
        return [Gateway(item, self._client) for item in self._array(data, "gateways")]

    def get(self, fleet: str, gateway: str) -> Gateway:
        data = self._client.get_json(self._client.url("fleets", fleet, "gateways", gateway))
        return Gateway(self._object(data, "gateway"), self._client)

    def delete(self, fleet: str, gateway: str) -> None:
        self._client.request("DELETE", self._client.url("fleets", fleet, "gateways", gateway))
