"""A machine's filesystem, rooted in its directory: path confinement, FSEntry, streamed uploads.

A machine path ("/app/x.txt") maps to `<root>/app/x.txt`. A path whose `..` would climb above the root, an
absolute symlink on the way, or a symlink whose target resolves outside the root is refused (400): locally the
machine's processes are not chrooted, so an absolute symlink would point into the host.
"""

from __future__ import annotations

import os
import stat as stat_mod
import tempfile
from pathlib import Path

from valyent_cli.local.problems import Problem, invalid, not_found


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def resolve(root: Path, path: object, *, follow_final: bool = True, location: str = "query.path") -> tuple[Path, str]:
    """(host path, machine-absolute path). Raises a 400 Problem for a path that would leave the root."""
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
    real_root = os.path.realpath(root)
    cur = str(root)
    for i, comp in enumerate(parts):
        cur = os.path.join(cur, comp)
        if i == len(parts) - 1 and not follow_final:
            break
        if os.path.islink(cur):
            target = os.readlink(cur)
            if os.path.isabs(target):
                raise invalid(f"path {path!r} goes through an absolute symlink ({target})", location, path)
            if not _within(os.path.realpath(cur), real_root):
                raise invalid(f"path {path!r} goes through a symlink that points outside the machine", location, path)
    if follow_final and not _within(os.path.realpath(cur), real_root):
        raise invalid(f"path {path!r} resolves outside the machine", location, path)
    return Path(cur), "/" + "/".join(parts)


def entry(host: Path, machine_path: str, root: Path) -> dict:
    st = _safe_stat(host, root)
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


def _safe_stat(host: Path, root: Path) -> os.stat_result:
    """stat, following a symlink only when it stays inside the root (else the link itself)."""
    if os.path.islink(host):
        target = os.path.realpath(host)
        if _within(target, os.path.realpath(root)) and os.path.exists(target):
            return os.stat(host)
        return os.lstat(host)
    return os.stat(host)


def stat(root: Path, path: object) -> dict:
    host, mpath = resolve(root, path)
    if not os.path.lexists(host):
        raise not_found(f"{mpath}: file")
    return entry(host, mpath, root)


def ls(root: Path, path: object) -> list[dict]:
    host, mpath = resolve(root, path)
    if not os.path.exists(host):
        raise not_found(f"{mpath}: directory")
    if not os.path.isdir(host):
        raise invalid(f"{mpath} is not a directory", "query.path", path)
    out = []
    with os.scandir(host) as it:
        for de in it:
            child = mpath.rstrip("/") + "/" + de.name
            try:
                out.append(entry(Path(de.path), child, root))
            except OSError:
                continue  # vanished while listing
    out.sort(key=lambda e: e["name"])
    return out


def mkdir(root: Path, path: object) -> None:
    host, _ = resolve(root, path, location="body.dir")
    try:
        os.makedirs(host, exist_ok=True)
    except FileExistsError:
        raise invalid(f"{path} exists and is not a directory", "body.dir", path) from None
    except NotADirectoryError:
        raise invalid(f"a parent of {path} is not a directory", "body.dir", path) from None
    # makedirs may have gone through symlinks created meanwhile: check where it landed
    resolve(root, path, location="body.dir")


def rm(root: Path, path: object) -> None:
    host, mpath = resolve(root, path, follow_final=False)
    if mpath == "/":
        raise invalid("refusing to remove the machine's root directory", "query.path", path)
    if not os.path.lexists(host):
        raise not_found(f"{mpath}: file")
    if os.path.isdir(host) and not os.path.islink(host):
        import shutil

        shutil.rmtree(host)
    else:
        os.unlink(host)


def open_for_read(root: Path, path: object) -> tuple[Path, str]:
    host, mpath = resolve(root, path)
    if not os.path.exists(host):
        raise not_found(f"{mpath}: file")
    if os.path.isdir(host):
        raise invalid(f"{mpath} is a directory", "query.path", path)
    if not os.path.isfile(host):  # a FIFO would hold the read open forever; a device has no end
        raise invalid(f"{mpath} is not a regular file", "query.path", path)
    return host, mpath


class UploadParser:
    """Feeds a multipart body to python-multipart, writing the `file` part straight to a temporary file on the
    same filesystem as the machine, so that the upload is never held in memory and lands with one rename."""

    MAX_FIELD = 64 * 1024

    def __init__(self, content_type: str, tmp_dir: Path):
        try:
            import python_multipart
            from python_multipart.multipart import parse_options_header
        except ImportError:  # pragma: no cover - a dependency of the package
            raise Problem("NOT_IMPLEMENTED", "file uploads need the python-multipart package") from None
        kind, params = parse_options_header(content_type)
        if kind != b"multipart/form-data" or b"boundary" not in params:
            raise invalid("write expects a multipart/form-data body with the fields path and file", "header.content-type")
        self.tmp_dir = tmp_dir
        self.fields: dict[str, bytes] = {}
        self.file: tempfile._TemporaryFileWrapper | None = None
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
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            self.file = tempfile.NamedTemporaryFile(dir=self.tmp_dir, prefix="upload-", delete=False)
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
                os.unlink(self.file.name)
            except OSError:
                pass


def commit_upload(root: Path, upload: UploadParser) -> None:
    """Move the uploaded file to its `path` inside the machine, creating parent dirs."""
    raw = upload.fields.get("path")
    if raw is None:
        raise invalid("the form field path is required", "body.path")
    if upload.file is None or not upload.file_done:
        raise invalid("the form field file is required", "body.file")
    host, mpath = resolve(root, raw.decode("utf-8", errors="replace"), follow_final=False, location="body.path")
    if mpath == "/":
        raise invalid("path must name a file", "body.path", mpath)
    parent_m = mpath.rsplit("/", 1)[0] or "/"
    parent, _ = resolve(root, parent_m, location="body.path")
    try:
        os.makedirs(parent, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise invalid(f"a parent of {mpath} is not a directory", "body.path", mpath) from None
    resolve(root, parent_m, location="body.path")
    if os.path.isdir(host) and not os.path.islink(host):
        raise invalid(f"{mpath} is a directory", "body.path", mpath)
    upload.file.close()
    os.chmod(upload.file.name, 0o644)
    os.replace(upload.file.name, host)
