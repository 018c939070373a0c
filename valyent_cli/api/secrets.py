"""Secrets of a namespace (`/namespaces/{ns}/secrets`): values go in, never come back.

A machine refers to one by name in ``config.workload.secrets`` (``[{"name", "env_var"}]``); the server puts its
value in the machine's environment when the machine is created.
"""

from __future__ import annotations

from valyent_cli.api import errors
from valyent_cli.api._resource import Resource
from valyent_cli.api._object import ApiObject


class Secret(ApiObject):
    """A secret's record: ``id``, ``name``, ``namespace``, ``created_at``, ``updated_at`` (never its value)."""

    __slots__ = ()


class Secrets(Resource):
    def _url(self, namespace: str | None, *rest: str) -> str:
        ns = namespace or self._client.namespace
        if not ns:
            raise errors.InvalidArgument("secrets live in a namespace: set one (--namespace, VALYENT_NAMESPACE)")
        return self._client.url("namespaces", ns, "secrets", *rest)

    def list(self, namespace: str | None = None) -> list[Secret]:
        data = self._client.get_json(self._url(namespace))
        return [Secret(item, self._client) for item in self._array(data, "secrets")]

    def get(self, name: str, namespace: str | None = None) -> Secret:
        return Secret(self._object(self._client.get_json(self._url(namespace, name)), "secret"), self._client)

    def create(self, name: str, value: str, namespace: str | None = None) -> Secret:
        response = self._client.request("POST", self._url(namespace), json={"name": name, "value": value})
        return Secret(self._object(self._json(response), "secret"), self._client)

    def update(self, name: str, value: str, namespace: str | None = None) -> Secret:
        data = self._client.send_json("PATCH", self._url(namespace, name), json={"value": value}, idempotent=True)
        return Secret(self._object(data, "secret"), self._client)

    def set(self, name: str, value: str, namespace: str | None = None) -> tuple[Secret, bool]:
        """Create the secret, or update its value when it exists. Returns (the secret, whether it was created)."""
        try:
            self.get(name, namespace)
        except errors.NotFound:
            return self.create(name, value, namespace), True
        return self.update(name, value, namespace), False

    def delete(self, name: str, namespace: str | None = None) -> None:
        self._client.request("DELETE", self._url(namespace, name))
