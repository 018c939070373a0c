"""A machine's filesystem and exec, on its initd host (``initd_endpoint`` with the machine id in it)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from valyent_cli.api._http import httpx

from valyent_cli.api import _upload
from valyent_cli.api._resource import Resource
from valyent_cli.api.constants import DEFAULT_EXEC_TIMEOUT_MS
from valyent_cli.api._transport import Transport

if TYPE_CHECKING:  # annotations only
    from valyent_cli.api.types import ExecResult, FSEntry

CHUNK = 64 * 1024


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(target: str) -> int:
    """mkstemp makes 0600 files: a download gets the mode of the file it replaces, else what open() would give."""
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


class FileSystem(Resource):
    """``machine.fs``: ls, mkdir, read, write, rm, stat; reads and writes are streamed, so size does not matter."""

    def __init__(self, client: Transport, machine_id: str) -> None:
        super().__init__(client)
        self.machine_id = machine_id

    def _url(self, *segments: str) -> str:
        return self._client.initd_url(self.machine_id, *segments)

    def ls(self, path: str) -> list[FSEntry]:
        return self._array(self._client.get_json(self._url("fs", "ls"), params={"path": path}), "entries")  # type: ignore[return-value]

    def stat(self, path: str) -> FSEntry:
        return self._object(self._client.get_json(self._url("fs", "stat"), params={"path": path}), "entry")  # type: ignore[return-value]

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

    def download(self, path: str, target: IO[bytes], progress: Callable[[int], Any] | None = None) -> int:
        """Stream a file into a binary file object; return the number of bytes written. ``progress`` is called with
        the size of each chunk written."""
        total = 0
        with self.open(path) as chunks:
            for chunk in chunks:
                target.write(chunk)
                total += len(chunk)
                if progress is not None:
                    progress(len(chunk))
        return total

    def download_to(self, path: str, local_path: str | os.PathLike[str],
                    progress: Callable[[int], Any] | None = None) -> int:
        """Stream a file to ``local_path``; return the number of bytes written.

        The bytes go to a temporary file beside the target, renamed over it only once the whole file arrived: a
        download that breaks or is interrupted (Ctrl-C included) leaves no partial file under the target name.
        """
        import tempfile

        target = os.fspath(local_path)
        directory = os.path.dirname(os.path.abspath(target))
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".part", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                total = self.download(path, out) if progress is None else self.download(path, out, progress)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, _mode_for(target))
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return total

    def write(self, path: str, data: bytes | str | IO[bytes], *, filename: str | None = None) -> str | None:
        """Write a file (parents created). ``data`` may be bytes, text, or a binary file object read in chunks.

        A file object is sent as a snapshot of the bytes it holds when the upload begins, or chunked when its size
        cannot be known ahead (a pipe, a /proc file): see ``api/_upload.py``. Returns a note when the caller should
        know which (the file grew meanwhile, or was sent chunked), else None.
        """
        if isinstance(data, str):
            data = data.encode()
        name = filename or os.path.basename(path.rstrip("/")) or "file"
        if not isinstance(data, bytes):
            data = _upload.body_for(data)
        self._client.request(
            "POST",
            self._url("fs", "write"),
            data={"path": path},
            files={"file": (name, data, "application/octet-stream")},
            timeout=httpx.Timeout(self._client.timeout, write=None),
        )
        return _upload.describe(data)

    def exec(self, cmd: list[str], timeout_ms: int | None = None) -> ExecResult:
        """initd's exec reads the same ExecOptions as Ravel's (`timeout_ms` required): ``None`` sends the default."""

        if timeout_ms is None:
            timeout_ms = DEFAULT_EXEC_TIMEOUT_MS
        read = self._client.timeout + timeout_ms / 1000.0
        data = self._client.send_json(
            "POST", self._url("exec"), json={"cmd": list(cmd), "timeout_ms": timeout_ms},
            timeout=httpx.Timeout(self._client.timeout, read=read),
        )
        return self._object(data, "exec result")  # type: ignore[return-value]

    def status(self) -> Any:
        return self._json(self._client.request("GET", self._url("status")))

    # The seed SDK's names.
    read_file = read
    write_file = write
