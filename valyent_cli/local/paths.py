"""Where the sandbox keeps its files, and its token."""

from __future__ import annotations

import os
import secrets
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


def ensure_data_dir(data_dir: Path) -> Path:
    """Create the data dir (mode 0700: it holds the token and every machine's files)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.chmod(data_dir, 0o700)
    except OSError:
        pass
    return data_dir


def token_path(data_dir: Path) -> Path:
    return data_dir / "token"


def read_token(data_dir: Path) -> str | None:
    try:
        return token_path(data_dir).read_text().strip() or None
    except FileNotFoundError:
        return None


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
