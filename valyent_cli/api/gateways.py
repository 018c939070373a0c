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
        """A gateway by id or name. Ravel finds a name with a malformed query, a 500 (ravel/state/db/gateways.go:
        it looks up by id only what starts with ``gw_``): then the name is found in the fleet's list."""
        from valyent_cli.api.errors import ApiError

        try:
            data = self._client.get_json(self._client.url("fleets", fleet, "gateways", gateway),
                                         **self._no_retry_of_500(gateway))
        except ApiError as exc:
            if exc.status != 500 or gateway.startswith("gw_"):
                raise
            return self._by_name(fleet, gateway)
        return Gateway(self._object(data, "gateway"), self._client)

    def delete(self, fleet: str, gateway: str) -> None:
        """Delete a gateway by id or name (a name Ravel cannot look up is found in the list, as in ``get``)."""
        from valyent_cli.api.errors import ApiError

        try:
            self._client.request("DELETE", self._client.url("fleets", fleet, "gateways", gateway),
                                 **self._no_retry_of_500(gateway))
        except ApiError as exc:
            if exc.status != 500 or gateway.startswith("gw_"):
                raise
            found = self._by_name(fleet, gateway)
            self._client.request("DELETE", self._client.url("fleets", fleet, "gateways", str(found["id"])))

    @staticmethod
    def _no_retry_of_500(gateway: str) -> dict[str, Any]:
        """A name's 500 on Ravel is its lookup, not a passing fault: the list is asked at once, not after retries."""
        if gateway.startswith("gw_"):
            return {}
        from valyent_cli.api._transport import RETRY_STATUSES

        return {"retry_statuses": RETRY_STATUSES - {500}}

    def _by_name(self, fleet: str, name: str) -> Gateway:
        """The gateway of that name in the fleet's list."""
        for item in self.list(fleet):
            if item.get("name") == name:
                return item
        from valyent_cli.api.errors import NotFound

        raise NotFound(404, f"gateway {name!r} not found", code="NOT_FOUND")
