"""Namespaces: the tenants of a Ravel server (`POST/GET /namespaces`, `GET/DELETE /namespaces/{name}`).

Every fleet, machine, gateway and secret lives in one; a stock Ravel requires ``?namespace=`` on those routes
and answers 404 "namespace not found" until the namespace is created.
"""

from __future__ import annotations

from valyent_cli.api._resource import Resource
from valyent_cli.api._object import ApiObject


class Namespace(ApiObject):
    """A namespace: ``name``, ``created_at``."""

    __slots__ = ()

    def delete(self) -> None:
        self._client.namespaces.delete(self["name"])


class Namespaces(Resource):
    def list(self) -> list[Namespace]:
        data = self._client.get_json(self._client.url("namespaces"))
        return [Namespace(item, self._client) for item in self._array(data, "namespaces")]

    def create(self, name: str) -> Namespace:
        response = self._client.request("POST", self._client.url("namespaces"), json={"name": name})
        return Namespace(self._object(self._json(response), "namespace"), self._client)

    def get(self, name: str) -> Namespace:
        return Namespace(self._object(self._client.get_json(self._client.url("namespaces", name)), "namespace"),
                         self._client)

    def delete(self, name: str) -> None:
        self._client.request("DELETE", self._client.url("namespaces", name))
