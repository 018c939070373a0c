"""How an upload's body is sent: with its length, as a snapshot, or chunked.

httpx announces a file's length from ``fstat`` before sending it. A file that grows meanwhile (a log being written)
would send more than announced, one that reports size 0 but has content (``/proc/...``) likewise, and h11 stops
the upload with a protocol error. So:

* a regular file with a size is sent as a **snapshot**: exactly the bytes it had when the upload began (what was
  appended afterwards is not sent, and the caller is told); one that shrinks meanwhile fails plainly;
* a file whose size cannot be known ahead (a pipe, stdin, a socket, a ``/proc`` file reporting 0 bytes) is sent
  **chunked**, as it comes, to its end.
"""

from __future__ import annotations

import os
import stat
from typing import IO, Any


class Snapshot:
    """A read-only view of the first ``length`` bytes of a file from where it stood, that httpx sizes correctly
    (``seek``/``tell`` report ``length``; no ``fileno``, which would report the live size)."""

    def __init__(self, fileobj: IO[bytes], length: int, name: str) -> None:
        self._file = fileobj
        self._start = fileobj.tell()
        self._length = length
        self._pos = 0
        self.name = name
        self.grew = False

    def read(self, size: int = -1) -> bytes:
        left = self._length - self._pos
        if left <= 0:
            if not self.grew and self._file.read(1):
                self.grew = True
            return b""
        data = self._file.read(left if size is None or size < 0 else min(size, left))
        if not data:
            raise OSError(f"{self.name} shrank while it was being uploaded ({self._pos} of {self._length} bytes sent)")
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END:
            target = self._length + offset
        elif whence == os.SEEK_CUR:
            target = self._pos + offset
        else:
            target = offset
        target = max(0, min(target, self._length))
        self._file.seek(self._start + target)
        self._pos = target
        return target


class Chunked:
    """A read-only view of a stream with no fileno, tell or seek, so that httpx sends it chunked."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._fileobj = fileobj

    def read(self, size: int = -1) -> bytes:
        return self._fileobj.read(size)


def body_for(fileobj: Any) -> Snapshot | Chunked | Any:
    """What to hand httpx for ``fileobj``: a Snapshot of a regular file with a size, Chunked for anything whose
    size cannot be known ahead, the object itself for an in-memory stream (which httpx sizes by seeking)."""
    name = getattr(fileobj, "name", None)
    name = name if isinstance(name, str) else "the file"
    try:
        st = os.fstat(fileobj.fileno())
    except (AttributeError, OSError, ValueError):
        try:
            if fileobj.seekable():
                return fileobj
        except (AttributeError, OSError, ValueError):
            pass
        return Chunked(fileobj)
    if stat.S_ISREG(st.st_mode) and st.st_size > 0:
        try:
            position = fileobj.tell()
        except (AttributeError, OSError, ValueError):
            position = 0
        return Snapshot(fileobj, max(0, st.st_size - position), name)
    return Chunked(fileobj)


def describe(body: Any) -> str | None:
    """What the caller should know of how the upload went, or None when it was plain."""
    if isinstance(body, Snapshot) and body.grew:
        return (f"{body.name} grew during the upload: sent a snapshot, its first {body.tell()} bytes (its size when "
                "the upload began)")
    if isinstance(body, Chunked):
        return "its size could not be known ahead (a pipe or a file like /proc/...): sent chunked, to its end"
    return None
