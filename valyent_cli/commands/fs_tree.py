"""`fs put -r` and `fs get -r`: a directory and what it holds, file by file, as `cp -r` and `scp -r` copy.

Where the copy goes, as `cp -r`: into TARGET/NAME when TARGET is a directory that exists (or ends with `/`),
else at TARGET itself. Regular files and directories are copied; anything else (a symbolic link, a socket) is
left out with a note. Every name a machine lists is checked before it becomes a local path: one that is not a
single plain name (`..`, `a/b`, empty) stops the download before anything is written outside the target.
"""

from __future__ import annotations

import os
import posixpath
import stat
from typing import TYPE_CHECKING

from valyent_cli.cli.errors import CliError, UsageError

if TYPE_CHECKING:
    from valyent_cli.api.initd import FileSystem
    from valyent_cli.cli.output import Output


def put_tree(fs: FileSystem, out: Output, local: str, remote: str) -> tuple[int, int, str]:
    """Upload the directory ``local``; (files, bytes, the remote directory made)."""
    if remote.endswith("/") or _remote_dir(fs, remote):
        remote = posixpath.join(remote, os.path.basename(os.path.normpath(local)))
    files = size = 0
    for here, dirs, names in os.walk(local, onerror=_unreadable):
        dirs.sort()
        relative = os.path.relpath(here, local)
        target = remote if relative == "." else posixpath.join(remote, *relative.split(os.sep))
        fs.mkdir(target)
        for name in sorted(names):
            path = os.path.join(here, name)
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                out.warn(f"left out {path}: not a regular file")
                continue
            with open(path, "rb") as source:
                fs.write(posixpath.join(target, name), source)
            files, size = files + 1, size + info.st_size
    return files, size, remote


def get_tree(fs: FileSystem, out: Output, remote: str, local: str | None, *, force: bool) -> tuple[int, int, str]:
    """Download the directory ``remote``; (files, bytes, the local directory made). Every file that would be
    replaced is named before anything is written, unless ``force``."""
    name = posixpath.basename(remote.rstrip("/"))
    if local is None or os.path.isdir(local) or local.endswith(os.sep):
        if not name:
            raise UsageError(f"cannot name a local directory after {remote!r}: give LOCAL")
        local = os.path.join(local if local is not None else ".", name)
    plan = list(_walk(fs, remote.rstrip("/") or "/", local))
    if os.path.lexists(local) and not os.path.isdir(local):
        raise UsageError(f"LOCAL: {local!r} exists and is not a directory")
    clashes = [path for path, _, is_dir in plan if not is_dir and os.path.lexists(path)]
    if clashes and not force:
        raise UsageError(f"LOCAL: {clashes[0]!r} exists ({len(clashes)} file(s) would be replaced): pass --force")
    os.makedirs(local, exist_ok=True)
    files = size = 0
    for path, source, is_dir in plan:
        if is_dir:
            os.makedirs(path, exist_ok=True)
        elif os.path.isdir(path):
            out.warn(f"left out {source}: {path} is a directory here")
        else:
            size += fs.download_to(source, path)
            files += 1
    return files, size, local


def _walk(fs: FileSystem, remote: str, local: str):
    """(local path, remote path, is a directory) of everything under ``remote``, parents first."""
    for entry in sorted(fs.ls(remote), key=lambda e: str(e.get("name"))):
        name = str(entry.get("name", ""))
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name or name != name.strip("\n"):
            raise CliError(f"the machine listed a name that is not a plain file name in {remote}: {name[:80]!r}")
        source, path = posixpath.join(remote, name), os.path.join(local, name)
        if entry.get("is_dir"):
            yield path, source, True
            yield from _walk(fs, source, path)
        else:
            yield path, source, False


def _remote_dir(fs: FileSystem, path: str) -> bool:
    from valyent_cli.api import NotFound

    try:
        return bool(fs.stat(path).get("is_dir"))
    except NotFound:
        return False


def _unreadable(error: OSError) -> None:
    raise UsageError(f"LOCAL: cannot read {error.filename}: {error.strerror}")
