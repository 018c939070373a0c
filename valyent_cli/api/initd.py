"""A machine's filesystem and exec, on its initd host (``initd_endpoint`` with the machine id in it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from valyent_cli.api._http import httpx

from valyent_cli.api.client import parse_json
from valyent_cli.api.fleets import _array, _object
from valyent_cli.api.types import ExecResult, FSEntry

if TYPE_CHECKING:
    from valyent_cli.api.client import Client

CHUNK = 64 * 1024


class FileSystem:
    """``machine.fs``: ls, mkdir, read, write, rm, stat; reads and writes are streamed, so size does not matter."""

    def __init__(self, client: Client, machine_id: str) -> None:
        self._client = client
        self.machine_id = machine_id

    def _url(self, *segments: str) -> str:
        return self._client.initd_url(self.machine_id, *segments)

    def ls(self, path: str) -> list[FSEntry]:
        return _array(self._client.get_json(self._url("fs", "ls"), params={"path": path}), "entries")  # type: ignore[return-value]

    def stat(self, path: str) -> FSEntry:
        return _object(self._client.get_json(self._url("fs", "stat"), params={"path": path}), "entry")  # type: ignore[return-value]

    def mkdir(self, path: str) -> None:
        """Create a directory and its parents."""
        self._client.request("POST", self._url("fs", "mkdir"), json={"dir": path}, idempotent=True)

    def rm(self, path: str) -> None:
        """Remove a file or a directory, recursively."""
        self._client.request("POST", self._url("fs", "rm"), params={"path": path})

    @contextmanager
    def open(self, path: str) -> Iterator[Iterator[bytes]]:
        """The file's bytes as an iterator of chunks, for streaming: ``with fs.open(p) as chunks: ...``."""
        with self._client.stream(
            "GET", self._url("fs", "read"), params={"path": path}, headers={"Accept": "*/*"},
            timeout=httpx.Timeout(self._client.timeout),
        ) as response:
            yield response.iter_bytes(CHUNK)

    def read(self, path: str) -> bytes:
        """The whole file (the seed's ``readFile``); use ``open`` or ``download`` for big files."""
        with self.open(path) as chunks:
            return b"".join(chunks)

    def download(self, path: str, target: IO[bytes]) -> int:
        """Stream a file into a binary file object; return the number of bytes written."""
        total = 0
        with self.open(path) as chunks:
            for chunk in chunks:
                target.write(chunk)
                total += len(chunk)
        return total

    def write(self, path: str, data: bytes | str | IO[bytes], *, filename: str | None = None) -> None:
        """Write a file (parents created). ``data`` may be bytes, text, or a binary file object read in chunks."""
        if isinstance(data, str):
            data = data.encode()
        name = filename or os.path.basename(path.rstrip("/")) or "file"
        self._client.request(
            "POST",
            self._url("fs", "write"),
            data={"path": path},
            files={"file": (name, data, "application/octet-stream")},
            timeout=httpx.Timeout(self._client.timeout, write=None),
        )

    def exec(self, cmd: list[str], timeout_ms: int | None = None) -> ExecResult:
        read = self._client.timeout + (timeout_ms or 0) / 1000.0
        data = self._client.send_json(
            "POST", self._url("exec"), json={"cmd": list(cmd), "timeout_ms": timeout_ms},
            timeout=httpx.Timeout(self._client.timeout, read=read),
        )
        return _object(data, "exec result")  # type: ignore[return-value]

    def status(self) -> Any:
        return parse_json(self._client.request("GET", self._url("status")))

    # The seed SDK's names.
    read_file = read
    write_file = write
