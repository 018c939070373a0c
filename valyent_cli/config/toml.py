"""TOML files: reading one with errors that name the file and line, and writing one safely (atomic rename, mode
0600, in a 0700 directory, under an exclusive lock file)."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any, Iterator

from valyent_cli.config.errors import ConfigError

_TOML_POSITION = r"at line (\d+), column (\d+)"  # compiled by `re` on first use


def _decode_error(path: Path, exc: Exception, data: bytes | None = None) -> ConfigError:
    if isinstance(exc, UnicodeDecodeError) and data is not None:
        line = data[: exc.start].count(b"\n") + 1
        return ConfigError(path, line, "the file is not valid UTF-8 text; fix or remove it")
    text = str(exc)
    match = re.search(_TOML_POSITION, text)
    line = int(match.group(1)) if match else None
    return ConfigError(path, line, f"invalid TOML: {text}; fix or remove the file (valyent never overwrites a file it cannot read)")


def _read_toml(path: Path) -> dict[str, Any] | None:
    """Parse a TOML file; None when it does not exist. ConfigError (file and line) when it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read the file: {exc.strerror or exc}") from None
    import tomllib  # only when there is a file: a run configured by the environment alone never loads it

    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _decode_error(path, exc, data) from None
    except RecursionError:
        raise ConfigError(path, None, "invalid TOML: nested too deeply to read; fix or remove the file") from None


def _key_line(path: Path, key: str, table: str | None = None) -> int | None:
    """Best effort: the line where ``key`` is set (inside ``[table]`` when given), for error messages."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    key_re = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*=""")
    in_table = table is None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if table is not None and stripped.startswith("["):
            header = stripped.strip("[]").strip().replace('"', "").replace("'", "")
            in_table = header == table
            continue
        if in_table and key_re.match(line):
            return number
    return None


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` with mode 0700 (it holds tokens), or tighten one of ours that is open to others (made by
    hand, or by an old version)."""
    if directory.is_dir():
        with contextlib.suppress(OSError):
            st = directory.stat()
            if st.st_mode & 0o077 and st.st_uid == os.geteuid():
                os.chmod(directory, 0o700)
        return
    try:
        directory.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(directory, None, f"cannot create the configuration directory: {exc.strerror or exc}")
    # mkdir's mode is filtered by the umask; the directory holds tokens, so make sure of 0700.
    with contextlib.suppress(OSError):
        os.chmod(directory, 0o700)


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (a lock file, created 0600) for the duration of the block."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(lock_path, None, f"cannot open the lock file: {exc.strerror or exc}") from None
    try:
        _lock(fd)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as TOML to ``path``: a temporary file in the same directory, mode 0600, fsync, rename.
    ConfigError when it cannot; the previous file is then unchanged."""
    import tempfile

    import tomli_w

    data = tomli_w.dumps(doc).encode("utf-8")
    directory = path.parent
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ConfigError(
            path,
            None,
            f"could not write the configuration ({exc.strerror or exc}); the previous file is unchanged",
        ) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _fsync_dir(directory)


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: msvcrt locks a byte range, which is enough for a lock file
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on every platform.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
