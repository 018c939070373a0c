"""Where the sandbox keeps its files, and its token."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8421


def default_data_dir() -> Path:
    env = os.environ.get("VALYENT_LOCAL_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("valyent")) / "local"


def resolve_data_dir(data_dir: Path | str | None) -> Path:
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


def _refuse(message: str) -> Exception:
    from valyent_cli.local.errors import ServeError

    return ServeError(message)


def ensure_data_dir(data_dir: Path) -> Path:
    """Create the data dir (mode 0700: it holds the token and every machine's files). One that cannot be made
    0700 (another user's) is an error: the token would be readable by others."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise _refuse(f"cannot create the sandbox data dir {data_dir}: {exc.strerror or exc}") from None
    try:
        os.chmod(data_dir, 0o700)
    except OSError as exc:
        raise _refuse(
            f"cannot make the sandbox data dir {data_dir} private (mode 0700): {exc.strerror or exc}; it holds the "
            "sandbox's token: use a directory of your own (--data-dir or VALYENT_LOCAL_DIR)"
        ) from None
    return data_dir


def token_path(data_dir: Path) -> Path:
    return data_dir / "token"


def read_token(data_dir: Path) -> str | None:
    """The token in ``data_dir``, None when there is none. A token file that is not a regular file of ours is
    refused (anyone who could write it chose the token; anyone who can read it holds it); one of ours readable by
    others is made 0600 first."""
    path = token_path(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _refuse(f"cannot read the sandbox token {path}: {exc.strerror or exc} (is it a symbolic link? "
                      "remove it: a new token is made at the next start)") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(f"the sandbox token {path} is not a regular file; remove it (a new token is made at the "
                          "next start)")
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise _refuse(f"the sandbox token {path} belongs to another user (uid {st.st_uid}); refusing to use "
                          "it: remove it (a new token is made at the next start), or use a data dir of your own")
        if st.st_mode & 0o077:
            try:
                os.fchmod(fh.fileno(), 0o600)
            except OSError as exc:
                raise _refuse(f"the sandbox token {path} is readable by others and cannot be made 0600: "
                              f"{exc.strerror or exc}") from None
        return fh.read(4096).decode("utf-8", "replace").strip() or None


def load_or_create_token(data_dir: Path) -> str:
    """The sandbox's bearer token: generated on first start, kept in `token` with mode 0600."""
    ensure_data_dir(data_dir)
    existing = read_token(data_dir)
    if existing:
        return existing
    token = "vlt_" + secrets.token_urlsafe(32)
    path = token_path(data_dir)
    tmp = path.with_name(f".token.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    try:
        os.link(tmp, path)  # never overwrite a token another process wrote first
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return read_token(data_dir) or token


def beneath(base: Path, *names: str) -> Path:
    """`base/names...`, where each name is one plain path component (not empty, `.` or `..`, no `/` or NUL), and
    the result, resolved, stays under `base` resolved: every path the sandbox builds from a request's names goes
    through here (issue 27 item 2). ValueError otherwise."""
    for name in names:
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
            raise ValueError(f"{name!r} is not a plain file name")
    path = Path(base).joinpath(*names)
    top = os.path.realpath(base)
    if not os.path.realpath(path).startswith(top.rstrip(os.sep) + os.sep):
        raise ValueError(f"{path} leaves {top}")
    return path


def volume_dir(data_dir: Path, namespace: str, name: str) -> Path:
    """Where the process driver keeps a volume: `<data dir>/volumes/<namespace>/<name>`, from names checked by the
    same rules as the routes (a namespace by Ravel's object-name rule, a volume name by the sandbox's)."""
    from valyent_cli.local.problems import check_namespace, check_volume_name

    return beneath(Path(data_dir) / "volumes", check_namespace(namespace, "namespace"),
                   check_volume_name(name, "volume"))

