"""Nodes: the hosts of a Ravel cluster (`GET /nodes`)."""

from __future__ import annotations

from valyent_cli.api._resource import Resource
from valyent_cli.api._object import ApiObject


class Node(ApiObject):
    """A node: ``id``, ``address``, ``agent_port``, ``region``, ``heartbeated_at``."""

    __slots__ = ()


class Nodes(Resource):
    def list(self) -> list[Node]:
        data = self._client.get_json(self._client.url("nodes"))
        return [Node(item, self._client) for item in self._array(data, "nodes")]
