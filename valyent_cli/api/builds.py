"""Image builds, as Ravel serves them (`ravel/server/endpoints/builds.go`, `api/builds.go`).

`POST /namespaces/{ns}/builds` takes the build context as the multipart file field `context` (a tar.gz) and the
options as query parameters (`image_name`, `tag`, `registry`, `dockerfile`, `target`, `no_cache`); Ravel has no
query parameter for build arguments, so ``build_args`` go as repeated `build_arg=K=V` parameters, which the local
sandbox reads and Ravel ignores. A build's log is plain text (`GET .../logs?follow=true` streams it live).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from valyent_cli.api._http import httpx
from valyent_cli.api import errors
from valyent_cli.api._resource import Resource
from valyent_cli.api._object import ApiObject

#: states after which a build changes no more
FINAL_STATES = ("completed", "failed")
DEFAULT_NAMESPACE = "default"


class Build(ApiObject):
    """A build: ``id``, ``namespace``, ``image_name``, ``tag``, ``registry``, ``full_image``, ``status``
    (pending, building, pushing, completed, failed), and maybe ``digest``, ``error``, ``duration_ms``,
    ``created_at``, ``completed_at``, ``node_id``."""

    __slots__ = ()

    @property
    def done(self) -> bool:
        return self.get("status") in FINAL_STATES

    def refresh(self) -> Build:
        return self._client.builds.get(self["id"])

    def logs(self) -> str:
        return self._client.builds.logs(self["id"])

    def follow_logs(self) -> Iterator[str]:
        return self._client.builds.iter_logs(self["id"], follow=True)

    def cancel(self) -> None:
        self._client.builds.cancel(self["id"])


class Builds(Resource):
    def _url(self, *rest: Any) -> str:
        return self._client.url("namespaces", self._client.namespace or DEFAULT_NAMESPACE, "builds", *rest)

    def create(self, context: bytes | IO[bytes], image_name: str, *, tag: str | None = None,
               registry: str | None = None, dockerfile: str | None = None, target: str | None = None,
               no_cache: bool = False, build_args: dict[str, str] | None = None) -> Build:
        """Start a build of ``context`` (a gzipped tar of the build directory, bytes or a binary file)."""
        if not image_name:
            raise errors.InvalidArgument("an image name is required")
        params: dict[str, Any] = {"image_name": image_name, "tag": tag, "registry": registry,
                                  "dockerfile": dockerfile, "target": target, "no_cache": True if no_cache else None}
        if build_args:  # a list value is a repeated parameter
            params["build_arg"] = [f"{k}={v}" for k, v in build_args.items()]
        response = self._client.request(
            "POST", self._url(), params=params,
            files={"context": ("context.tar.gz", context, "application/gzip")},
            timeout=httpx.Timeout(self._client.timeout, write=None),
        )
        return Build(self._object(self._json(response), "build"), self._client)

    def list(self, limit: int | None = None) -> list[Build]:
        data = self._client.get_json(self._url(), params={"limit": limit} if limit else None)
        return [Build(item, self._client) for item in self._array(data, "builds")]

    def get(self, build_id: str) -> Build:
        self._require(build_id, "build id")
        return Build(self._object(self._client.get_json(self._url(build_id)), "build"), self._client)

    def logs(self, build_id: str) -> str:
        return self._client.request("GET", self._url(build_id, "logs"), headers={"Accept": "text/plain"}).text

    def iter_logs(self, build_id: str, follow: bool = False) -> Iterator[str]:
        """The log's lines (without their newline) as the server sends them; with ``follow`` until the build ends."""
        params = {"follow": True} if follow else None
        timeout = httpx.Timeout(self._client.timeout, read=None) if follow else None
        with self._client.stream("GET", self._url(build_id, "logs"), params=params, timeout=timeout,
                                 headers={"Accept": "text/plain"}) as response:
            from valyent_cli.api.logs import text_lines

            yield from text_lines(response.iter_bytes())  # httpx's iter_lines would hold a line without end whole

    def cancel(self, build_id: str) -> None:
        self._client.request("POST", self._url(build_id, "cancel"))
