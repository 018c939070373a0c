"""Nodes: the hosts of a Ravel cluster (`GET /nodes`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from valyent_cli.api.fleets import _array
from valyent_cli.api.types import ApiObject

if TYPE_CHECKING:
    from valyent_cli.api.client import Client


class Node(ApiObject):
    """A node: ``id``, ``address``, ``agent_port``, ``region``, ``heartbeated_at``."""

    __slots__ = ()


class Nodes:
    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[Node]:
        return [Node(item, self._client) for item in _array(self._client.get_json(self._client.url("nodes")), "nodes")]
