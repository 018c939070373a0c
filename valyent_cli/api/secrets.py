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
    """Ravel reads a secret's namespace from ``?namespace=`` only (ravel/server/endpoints/secrets.go: the requests
    embed NSResolver; the ``{namespace}`` path segment is no field of theirs): the namespace goes in both."""

    def _call(self, namespace: str | None, *rest: str) -> tuple[str, dict[str, str]]:
        ns = namespace or self._client.namespace
        if not ns:
            raise errors.InvalidArgument("secrets live in a namespace: set one (--namespace, VALYENT_NAMESPACE)")
        return self._client.url("namespaces", ns, "secrets", *rest), {"namespace": ns}

    def list(self, namespace: str | None = None) -> list[Secret]:
        url, params = self._call(namespace)
        data = self._client.get_json(url, params=params)
        return [Secret(item, self._client) for item in self._array(data, "secrets")]

    def get(self, name: str, namespace: str | None = None) -> Secret:
        url, params = self._call(namespace, name)
        return Secret(self._object(self._client.get_json(url, params=params), "secret"), self._client)

    def create(self, name: str, value: str, namespace: str | None = None) -> Secret:
        url, params = self._call(namespace)
        response = self._client.request("POST", url, params=params, json={"name": name, "value": value})
        return Secret(self._object(self._json(response), "secret"), self._client)

    def update(self, name: str, value: str, namespace: str | None = None) -> Secret:
        url, params = self._call(namespace, name)
        data = self._client.send_json("PATCH", url, params=params, json={"value": value}, idempotent=True)
        return Secret(self._object(data, "secret"), self._client)

    def set(self, name: str, value: str, namespace: str | None = None) -> tuple[Secret, bool]:
        """Create the secret, or update its value when it exists. Returns (the secret, whether it was created)."""
        try:
            self.get(name, namespace)
        except errors.NotFound:
            return self.create(name, value, namespace), True
        return self.update(name, value, namespace), False

    def delete(self, name: str, namespace: str | None = None) -> None:
        url, params = self._call(namespace, name)
        self._client.request("DELETE", url, params=params)
