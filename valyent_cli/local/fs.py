"""A machine's filesystem, rooted in its directory: path confinement, FSEntry, streamed uploads.

A machine path ("/app/x.txt") maps to `<root>/app/x.txt`. A path whose `..` would climb above the root, an
absolute symlink on the way, or a symlink whose target climbs above the root is refused (400).

The machine's processes change its files while a call runs: a check of a path followed by a second lookup by name
(`open`, `unlink`, `rename`) can be turned, by swapping a directory and a symlink between the two, into a read,
write or delete of a host file. So every call walks its path once, component by component from a directory fd
of the root, opening each directory with `O_NOFOLLOW` relative to the one before; a symlink on the way is read
(`readlinkat`) and its target walked the same way, never followed by the kernel. What the call then does (open,
unlink, rmtree, rename, mkdir) is done relative to the last directory fd, on a final name the kernel will not
follow either. A swap can only make the call fail (400), never reach outside.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat as stat_mod
from pathlib import Path

from valyent_cli.local.problems import Problem, invalid, not_found

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_LINKS = 40  # as the kernel's MAXSYMLINKS


def _parts(path: object, location: str) -> list[str]:
    if not isinstance(path, str) or not path:
        raise invalid("path is required", location)
    if "\0" in path:
        raise invalid("path contains a NUL byte", location, path)
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise invalid(f"path {path!r} escapes the machine's root", location, path)
            parts.pop()
        else:
            parts.append(comp)
    return parts


class Target:
    """Where a machine path leads: the chain of open directory fds from the root (`dir_fd` the last) and the final
    `name` in it, or None when the path is that directory itself. `missing`: a directory on the way does not
    exist (so neither does the target). A context manager that closes the fds."""

    def __init__(self, fds: list[int], name: str | None, mpath: str, missing: bool = False):
        self.fds, self.name, self.mpath, self.missing = fds, name, mpath, missing

    @property
    def dir_fd(self) -> int:
        return self.fds[-1]

    def lstat(self) -> os.stat_result | None:
        """The target itself (a symlink is not followed), or None when it does not exist."""
        if self.missing:
            return None
        try:
            if self.name is None:
                return os.fstat(self.dir_fd)
            return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open(self, flags: int) -> int:
        """An fd of the target, opened without following a symlink (a swap made since the walk fails, ELOOP)."""
        try:
            if self.name is None:
                return os.open(".", flags | os.O_CLOEXEC, dir_fd=self.dir_fd)
            return os.open(self.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dir_fd)
        except FileNotFoundError:
            raise not_found(f"{self.mpath}: file") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # not what the walk saw: the machine is racing us
                raise invalid(f"path {self.mpath!r} changed while it was looked up", "query.path",
                              self.mpath) from None
            raise

    def close(self) -> None:
        while self.fds:
            os.close(self.fds.pop())

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def walk(root: Path, path: object, *, follow_final: bool = True, create_dirs: bool = False,
         location: str = "query.path") -> Target:
    """Walk `path` inside `root` (see the module's docstring). Symlinks on the way are resolved inside the root
    (a relative one; an absolute one is refused, as one that climbs above the root), the final component too
    with `follow_final`. `create_dirs` makes the missing directories on the way (not the final component).
    Raises a 400 Problem for a path that would leave the root or go through a file."""
    parts = _parts(path, location)
    mpath = "/" + "/".join(parts)
    # the root itself is the sandbox's own path (a podman root may be reached through a host symlink)
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        todo = list(reversed(parts))
        links = 0
        while todo:
            comp = todo.pop()
            if comp == "..":  # only from a symlink's target: the path's own were resolved above
                if len(fds) == 1:
                    raise invalid(f"path {path!r} goes through a symlink that points outside the machine",
                                  location, path)
                os.close(fds.pop())
                continue
            last = not todo
            try:
                st = os.stat(comp, dir_fd=fds[-1], follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return Target(fds, comp, mpath)
                if not create_dirs:
                    return Target(fds, None, mpath, missing=True)
                try:
                    os.mkdir(comp, 0o755, dir_fd=fds[-1])
                except FileExistsError:
                    pass
                st = None
            if st is not None and stat_mod.S_ISLNK(st.st_mode) and (follow_final or not last):
                links += 1
                if links > _MAX_LINKS:
                    raise invalid(f"path {path!r} has too many levels of symbolic links", location, path)
                try:
                    target = os.readlink(comp, dir_fd=fds[-1])
                except OSError as exc:
                    if exc.errno in (errno.EINVAL, errno.ENOENT):  # no longer a symlink: the machine is racing us
                        raise invalid(f"path {path!r} changed while it was looked up", location, path) from None
                    raise
                if target.startswith("/"):
                    raise invalid(f"path {path!r} goes through an absolute symlink ({target})", location, path)
                todo.extend(reversed([c for c in target.split("/") if c not in ("", ".")]))
                continue
            if last:
                return Target(fds, comp, mpath)
            try:
                fds.append(os.open(comp, _DIR, dir_fd=fds[-1]))
            except NotADirectoryError:
                raise invalid(f"a parent of {mpath} is not a directory", location, path) from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # it became a symlink since the stat: the machine is racing us
                    raise invalid(f"path {path!r} changed while it was looked up", location, path) from None
                raise
        return Target(fds, None, mpath)
    except BaseException:
        Target(fds, None, mpath).close()
        raise


def _entry(st: os.stat_result, machine_path: str) -> dict:
    name = machine_path.rsplit("/", 1)[-1] or "/"
    return {
        "name": _text(name),
        "path": _text(machine_path),
        "is_dir": stat_mod.S_ISDIR(st.st_mode),
        "size": st.st_size,
        "mod_time": int(st.st_mtime),
    }


def _text(name: str) -> str:
    """A name as JSON can carry it: bytes that are not UTF-8 (surrogate escapes) become U+FFFD, as Ravel's Go
    encoder writes them, so one such file never makes its directory unlistable."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def stat(root: Path, path: object) -> dict:
    with walk(root, path) as t:
        st = t.lstat()
        if st is None:
            raise not_found(f"{t.mpath}: file")
        return _entry(st, t.mpath)


def ls(root: Path, path: object) -> list[dict]:
    with walk(root, path) as t:
        st = t.lstat()
        if st is None:
            raise not_found(f"{t.mpath}: directory")
        if not stat_mod.S_ISDIR(st.st_mode):
            raise invalid(f"{t.mpath} is not a directory", "query.path", path)
        fd = t.open(_DIR)
        mpath = t.mpath
    out = []
    try:
        with os.scandir(fd) as it:
            for de in it:
                child = mpath.rstrip("/") + "/" + de.name
                try:
                    out.append(_entry(_child_stat(root, fd, de, child), child))
                except OSError:
                    continue  # vanished while listing
    finally:
        os.close(fd)
    out.sort(key=lambda e: e["name"])
    return out


def _child_stat(root: Path, dir_fd: int, de: os.DirEntry, child: str) -> os.stat_result:
    """A listed entry: a symlink followed when it leads somewhere inside the root, else the link itself."""
    if de.is_symlink():
        try:
            with walk(root, child) as t:
                st = t.lstat()
            if st is not None:
                return st
        except (Problem, OSError):
            pass
    return os.stat(de.name, dir_fd=dir_fd, follow_symlinks=False)


def mkdir(root: Path, path: object) -> None:
    with walk(root, path, create_dirs=True, location="body.dir") as t:
        if t.name is None:
            return
        try:
            os.mkdir(t.name, 0o755, dir_fd=t.dir_fd)
        except FileExistsError:
            st = t.lstat()
            if st is None or not stat_mod.S_ISDIR(st.st_mode):
                raise invalid(f"{path} exists and is not a directory", "body.dir", path) from None


def rm(root: Path, path: object) -> None:
    with walk(root, path, follow_final=False) as t:
        if t.name is None:
            raise invalid("refusing to remove the machine's root directory", "query.path", path)
        st = t.lstat()
        if st is None:
            raise not_found(f"{t.mpath}: file")
        if stat_mod.S_ISDIR(st.st_mode):
            try:  # rmtree with dir_fd opens each directory relative to its parent and checks it is what it stat'd
                shutil.rmtree(t.name, dir_fd=t.dir_fd)
            except OSError as exc:
                if "symbolic link" in str(exc):
                    raise invalid(f"path {path!r} changed while it was removed", "query.path", path) from None
                raise
        else:
            os.unlink(t.name, dir_fd=t.dir_fd)


def open_for_read(root: Path, path: object):
    """(an open binary file, its size) of a regular file. A FIFO would hold the read open forever and a device has
    no end: both refused. The file is opened once, without following a symlink, and read from that fd."""
    with walk(root, path) as t:
        st = t.lstat()
        if st is None:
            raise not_found(f"{t.mpath}: file")
        if stat_mod.S_ISDIR(st.st_mode):
            raise invalid(f"{t.mpath} is a directory", "query.path", path)
        if not stat_mod.S_ISREG(st.st_mode):
            raise invalid(f"{t.mpath} is not a regular file", "query.path", path)
        fd = t.open(os.O_RDONLY | os.O_NONBLOCK)
        mpath = t.mpath
    file = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    if not stat_mod.S_ISREG(st.st_mode):  # swapped between the stat and the open
        file.close()
        raise invalid(f"{mpath} is not a regular file", "query.path", path)
    return file, st.st_size


def open_upload_dir(root: Path, upload_dir: Path) -> int:
    """An fd of the directory an upload is spooled in: walked like a machine path when it is inside the machine
    (the machine could swap it for a symlink), else the sandbox's own directory, made when missing."""
    try:
        inside = upload_dir.relative_to(root)
    except ValueError:
        upload_dir.mkdir(parents=True, exist_ok=True)
        return os.open(upload_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    t = walk(root, "/" + str(inside), create_dirs=True)
    try:
        if t.name is not None:
            try:
                os.mkdir(t.name, 0o700, dir_fd=t.dir_fd)
            except FileExistsError:
                pass
        return t.open(_DIR)
    finally:
        t.close()


class UploadParser:
    """Feeds a multipart body to python-multipart, writing the `file` part straight to a temporary file on the
    same filesystem as the machine, so that the upload is never held in memory and lands with one rename."""

    MAX_FIELD = 64 * 1024

    def __init__(self, content_type: str, root: Path, tmp_dir: Path):
        try:
            import python_multipart
            from python_multipart.multipart import parse_options_header
        except ImportError:  # pragma: no cover - a dependency of the package
            raise Problem("NOT_IMPLEMENTED", "file uploads need the python-multipart package") from None
        kind, params = parse_options_header(content_type)
        if kind != b"multipart/form-data" or b"boundary" not in params:
            raise invalid("write expects a multipart/form-data body with the fields path and file", "header.content-type")
        self.root, self.tmp_dir = root, tmp_dir
        self.tmp_fd: int | None = None
        self.tmp_name: str | None = None
        self.fields: dict[str, bytes] = {}
        self.file = None
        self.file_done = False
        self._name = b""
        self._value = b""
        self._disposition = b""
        self._field: str | None = None
        self._to_file = False
        self._parse_options_header = parse_options_header
        self.parser = python_multipart.MultipartParser(params[b"boundary"], {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_field": lambda d, s, e: setattr(self, "_name", self._name + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "_value", self._value + d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        })

    def _part_begin(self) -> None:
        self._disposition = b""
        self._field = None
        self._to_file = False

    def _header_end(self) -> None:
        if self._name.lower() == b"content-disposition":
            self._disposition = self._value
        self._name = self._value = b""

    def _headers_finished(self) -> None:
        _, options = self._parse_options_header(self._disposition)
        name = options.get(b"name")
        if name is None:
            raise invalid("a multipart part has no name", "body")
        self._field = name.decode("utf-8", errors="replace")
        if self._field == "file":
            if self.file is not None:
                raise invalid("more than one file part", "body.file")
            self.tmp_fd = open_upload_dir(self.root, self.tmp_dir)
            self.tmp_name = f"upload-{secrets.token_hex(8)}"
            fd = os.open(self.tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=self.tmp_fd)
            self.file = os.fdopen(fd, "wb")
            self._to_file = True
        else:
            self.fields[self._field] = b""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._to_file:
            self.file.write(data[start:end])
        elif self._field is not None:
            value = self.fields[self._field] + data[start:end]
            if len(value) > self.MAX_FIELD:
                raise invalid(f"form field {self._field} is too long", f"body.{self._field}")
            self.fields[self._field] = value

    def _part_end(self) -> None:
        if self._to_file:
            self.file.flush()
            self.file_done = True
        self._to_file = False

    def feed(self, chunk: bytes) -> None:
        self.parser.write(chunk)

    def finish(self) -> None:
        self.parser.finalize()

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
            try:
                os.unlink(self.tmp_name, dir_fd=self.tmp_fd)
            except OSError:
                pass
        if self.tmp_fd is not None:
            os.close(self.tmp_fd)
            self.tmp_fd = None


def commit_upload(root: Path, upload: UploadParser) -> None:
    """Move the uploaded file to its `path` inside the machine, creating parent dirs: one rename between two
    directory fds, onto a final name the kernel does not follow."""
    raw = upload.fields.get("path")
    if raw is None:
        raise invalid("the form field path is required", "body.path")
    if upload.file is None or not upload.file_done:
        raise invalid("the form field file is required", "body.file")
    path = raw.decode("utf-8", errors="replace")
    with walk(root, path, follow_final=False, create_dirs=True, location="body.path") as t:
        if t.name is None:
            raise invalid("path must name a file", "body.path", t.mpath)
        st = t.lstat()
        if st is not None and stat_mod.S_ISDIR(st.st_mode):
            raise invalid(f"{t.mpath} is a directory", "body.path", t.mpath)
        os.fchmod(upload.file.fileno(), 0o644)
        upload.file.close()
        try:
            os.replace(upload.tmp_name, t.name, src_dir_fd=upload.tmp_fd, dst_dir_fd=t.dir_fd)
        except IsADirectoryError:  # a directory put there since the check
            raise invalid(f"{t.mpath} is a directory", "body.path", t.mpath) from None
