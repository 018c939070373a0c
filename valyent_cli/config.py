"""Configuration: profiles in ``config.toml``, the project file ``valyent.toml``, and precedence.

Everything that decides which endpoint, token, namespace and fleet a command uses lives here, so that the rule
"flag > environment > project file > active profile > default" is applied in exactly one place
(:func:`load_settings`). The file format is documented in ``docs/configuration.md``.

This module is imported by every command, including ``valyent --help``: it imports nothing heavy at module level
(tomllib, tomli_w, platformdirs, tempfile and ipaddress are imported where they are used) and never imports
httpx, typer or rich.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

DEFAULT_ENDPOINT = "https://console.valyent.cloud/v1"
DEFAULT_INITD_ENDPOINT = "https://{machine_id}-initd.valyent.dev"
DEFAULT_TIMEOUT = 30.0
DEFAULT_REGION = "gra-1"  # what commands use when Settings.region is None; the setting itself defaults to None
LOCAL_PROFILE = "local"
CONFIG_FILE = "config.toml"
PROJECT_FILE = "valyent.toml"

ENV_CONFIG_DIR = "VALYENT_CONFIG_DIR"
ENV_TOKEN = "VALYENT_API_TOKEN"
ENV_PROFILE = "VALYENT_PROFILE"
ENV_ENDPOINT = "VALYENT_API_URL"  # the archived Go CLI's name, kept for users who move over
ENV_NAMESPACE = "VALYENT_NAMESPACE"
ENV_FLEET = "VALYENT_FLEET"
ENV_REGION = "VALYENT_REGION"
ENV_INITD = "VALYENT_INITD_URL"
ENV_ALLOW_HTTP = "VALYENT_ALLOW_HTTP"
ENV_AUTH_SCHEME = "VALYENT_AUTH_SCHEME"
ENV_CA_CERT = "VALYENT_CA_CERT"
ENV_CLIENT_CERT = "VALYENT_CLIENT_CERT"
ENV_CLIENT_KEY = "VALYENT_CLIENT_KEY"
ENV_CPU_KIND = "VALYENT_CPU_KIND"
AUTH_SCHEMES = ("bearer", "raw")

# The sources a setting can come from, as shown by `auth status`.
FLAG = "flag"
ENVIRONMENT = "environment"
PROJECT = "project file"
PROFILE = "profile"
DEFAULT = "default"

# Keys a profile table may hold, with a one-line description (shown when a key is rejected).
PROFILE_KEYS: dict[str, str] = {
    "endpoint": "API base URL (http or https)",
    "token": "API token (set it with `valyent auth login`)",
    "namespace": "namespace sent with every request",
    "fleet": "default fleet (id or name)",
    "region": f"default region for new machines (commands use {DEFAULT_REGION} when unset)",
    "cpu_kind": "default CPU kind for new machines: one of the server's templates (commands use shared when unset)",
    "initd_endpoint": "URL template of a machine's agent, with {machine_id} (needed by `fs` for any endpoint but "
                      "Valyent Cloud's)",
    "auth_scheme": "how the token is sent: bearer (Authorization: Bearer TOKEN) or raw (the header is the token)",
    "ca_cert": "PEM file of the CA that signed the server's certificate",
    "client_cert": "PEM file of this client's certificate, for servers that require one (mTLS)",
    "client_key": "PEM file of the client certificate's private key (when not in client_cert)",
    "timeout": "request timeout in seconds",
    "allow_http": "allow sending the token over plain http to a non-loopback host (true/false)",
    "local": "this profile points at the local sandbox (true/false)",
    "data_dir": "the local sandbox's data directory (written by `valyent local start`)",
}
# `profiles set` refuses the token: a value on the command line ends up in shell history and `ps`.
SETTABLE_KEYS = tuple(k for k in PROFILE_KEYS if k != "token")

# Top-level keys of valyent.toml. endpoint, token and initd_endpoint are refused on purpose: a project file comes
# with a cloned repository, and one that could set the endpoint could send your token to a server of its choosing.
PROJECT_KEYS = ("fleet", "region", "namespace", "machine")
PROJECT_FORBIDDEN = ("endpoint", "token", "initd_endpoint", "allow_http", "auth_scheme", "ca_cert", "client_cert",
                     "client_key")
# Keys of the [machine] table of valyent.toml: defaults that `machines create` starts from.
MACHINE_KEYS: dict[str, str] = {
    "image": "string",
    "region": "string (overrides the top-level region for new machines)",
    "cpus": "integer >= 1",
    "memory": "integer >= 1 (MB), or a size string such as \"1gb\"",
    "memory_mb": "integer >= 1",
    "cpu_kind": "string",
    "env": "list of KEY=VALUE strings, or a table",
    "restart": "one of always, on-failure, never",
    "max_retries": "integer >= 0",
    "cmd": "list of strings, or a string (split like a shell)",
    "entrypoint": "list of strings, or a string (split like a shell)",
    "user": "string",
    "auto_destroy": "boolean",
    "stop_signal": "string",
    "stop_timeout": "integer >= 0 (seconds)",
    "skip_start": "boolean",
    "enable_gateway": "boolean",
    "secrets": "list of \"NAME:ENV_VAR\" strings (secrets of the namespace put in the environment)",
    "volumes": "list of \"NAME:PATH\" strings",
    "networks": "list of \"NAME=IP/PREFIX\" strings (private networks)",
    "health_cmd": "list of strings, or a string (split like a shell): the health check command",
    "health_interval": "integer >= 1 (seconds), or a duration such as \"30s\"",
    "health_timeout": "integer >= 1 (seconds), or a duration such as \"5s\"",
    "health_retries": "integer >= 1",
    "labels": "table of strings",
    "annotations": "table of strings",
}

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_TOML_POSITION = re.compile(r"at line (\d+), column (\d+)")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(Exception):
    """A configuration problem the user must fix: a broken or unwritable file, a bad value, an unknown profile.

    ``path`` and ``line`` say where, when a file is involved. Maps to exit code 2. Accepts either
    ``ConfigError(path, line, message)`` or ``ConfigError(message, path=..., line=...)``. Messages never contain
    a token.
    """

    def __init__(self, *args: Any, path: str | os.PathLike[str] | None = None, line: int | None = None) -> None:
        if len(args) == 3:
            path, line, message = args
        elif len(args) == 1:
            (message,) = args
        else:
            raise TypeError("ConfigError(path, line, message) or ConfigError(message, path=..., line=...)")
        self.path = Path(path) if path is not None else None
        self.line = line
        self.message = str(message)
        super().__init__(self.message)

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        where = str(self.path) + (f", line {self.line}" if self.line else "")
        return f"{where}: {self.message}"


class InsecureTransportError(ConfigError):
    """The token would travel over plain http to a host that is not loopback, and nothing allows it."""


@dataclass
class Settings:
    """The settings a command runs with, each resolved by precedence; ``sources`` says where each came from.

    ``project`` is the whole parsed ``valyent.toml`` (``{}`` when there is none); the machine defaults are its
    ``machine`` table, also available normalised as :attr:`machine_defaults`.
    """

    profile: str | None
    endpoint: str
    token: str | None
    namespace: str | None
    fleet: str | None
    region: str | None
    initd_endpoint: str | None
    timeout: float
    allow_http: bool
    is_local: bool
    auth_scheme: str = "bearer"
    cpu_kind: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    project: dict = field(default_factory=dict)
    project_path: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)
    config_path: Path | None = None

    @property
    def machine_defaults(self) -> dict[str, Any]:
        """The project's [machine] table with env as a list of KEY=VALUE and cmd/entrypoint as lists."""
        return machine_defaults(self.project)

    def client(self, *, token: str | None = None, timeout: float | None = None, max_retries: int | None = None,
               debug_hook: Any = None) -> Any:
        """The API client these settings describe (``token``: another one, such as a token `auth login` checks)."""
        from valyent_cli.api import Client

        retries = {} if max_retries is None else {"max_retries": max_retries}
        return Client(
            token or self.token or "",
            endpoint=self.endpoint,
            namespace=self.namespace,
            initd_endpoint=self.initd_endpoint,
            timeout=self.timeout if timeout is None else timeout,
            debug_hook=debug_hook,
            auth_scheme=self.auth_scheme,
            ca_cert=self.ca_cert,
            client_cert=self.client_cert,
            client_key=self.client_key,
            **retries,
        )

    @property
    def is_valyent_cloud(self) -> bool:
        """Whether the endpoint is Valyent Cloud's (the only one the default initd host belongs to)."""
        return self.endpoint.rstrip("/") == DEFAULT_ENDPOINT

    def __repr__(self) -> str:  # never show the token, even in a traceback
        token = "None" if self.token is None else f"<fingerprint {fingerprint(self.token)}>"
        return (
            f"Settings(profile={self.profile!r}, endpoint={self.endpoint!r}, token={token}, "
            f"namespace={self.namespace!r}, fleet={self.fleet!r}, region={self.region!r})"
        )


# ---------------------------------------------------------------------------------------------------------------
# Paths


def config_dir() -> Path:
    """The directory of config.toml: $VALYENT_CONFIG_DIR, else the platform's user config dir for valyent."""
    override = os.environ.get(ENV_CONFIG_DIR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("valyent"))


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


def go_config_path() -> Path:
    """Where the archived Go CLI kept its configuration."""
    return Path.home() / ".valyent" / "config.yaml"


def find_project_file(start: Path | None = None) -> Path | None:
    """The nearest valyent.toml in ``start`` (default: the working directory) or one of its parents."""
    try:
        here = (start or Path.cwd()).resolve()
    except OSError:  # the working directory was deleted under us
        return None
    for directory in (here, *here.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------------------------------------------------------
# Values


def fingerprint(token: str) -> str:
    """A short, stable, non-reversible id of a token (first 8 hex chars of its SHA-256), safe to show."""
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()[:8]


def mask_token(token: str | None) -> str | None:
    """``vly_…abcd``: a short known prefix and the last 4 characters, only for tokens long enough to spare them."""
    if token is None:
        return None
    if len(token) < 12:
        return "…"
    prefix = ""
    match = re.match(r"^([A-Za-z]{1,5}_)", token)
    if match:
        prefix = match.group(1)
    return f"{prefix}…{token[-4:]}"


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(value: Any, what: str, *, template: bool = False) -> str:
    from urllib.parse import urlsplit

    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a http:// or https:// URL")
    value = value.strip()
    probe = value.replace("{machine_id}", "machine") if template else value
    try:
        parts = urlsplit(probe)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{what} is not a valid URL: {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be a http:// or https:// URL, got {value!r}")
    if template and "{machine_id}" not in value:
        raise ValueError(f"{what} must contain {{machine_id}}, e.g. {DEFAULT_INITD_ENDPOINT}")
    return value.rstrip("/")


def _check_word(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    value = value.strip()
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError(f"{what} must not contain spaces or control characters")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError(f"{what} is not valid UTF-8")
    return value


def _check_file(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be the path of a PEM file")
    path = Path(value.strip()).expanduser()
    if not path.is_file():
        raise ValueError(f"{what}: no such file: {value.strip()}")
    return str(path.resolve())


def check_token(value: Any) -> str:
    """A token as read from a prompt, stdin or a file: surrounding whitespace dropped, nothing odd inside."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("the token is empty")
    value = value.strip()
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("the token must be a single word (no spaces or line breaks inside)")
    return value


def parse_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{what} must be true or false")


def _check_timeout(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number of seconds")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number of seconds") from None
    if not (number > 0) or number == float("inf"):
        raise ValueError(f"{what} must be a positive number of seconds")
    return number


def check_profile_value(key: str, value: Any) -> Any:
    """Validate (and coerce, for strings typed on a command line) one profile value. ValueError if bad."""
    what = key
    if key == "endpoint":
        return _check_url(value, what)
    if key == "initd_endpoint":
        return _check_url(value, what, template=True)
    if key == "token":
        return check_token(value)
    if key in ("namespace", "fleet", "region", "cpu_kind"):
        return _check_word(value, what)
    if key == "auth_scheme":
        if not isinstance(value, str) or value.strip().lower() not in AUTH_SCHEMES:
            raise ValueError(f"{what} must be one of {', '.join(AUTH_SCHEMES)}, not {value!r}")
        return value.strip().lower()
    if key in ("ca_cert", "client_cert", "client_key"):
        return _check_file(value, what)
    if key == "timeout":
        return _check_timeout(value, what)
    if key in ("allow_http", "local"):
        return parse_bool(value, what)
    if key == "data_dir":
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise ValueError(f"{what} must be a directory path")
        return value
    raise ValueError(f"unknown key {key!r}; valid keys: {', '.join(PROFILE_KEYS)}")


def check_key(key: str, *, settable: bool = False) -> str:
    """Raise ValueError naming the valid keys when ``key`` is not one."""
    valid = SETTABLE_KEYS if settable else tuple(PROFILE_KEYS)
    if key == "token" and settable:
        raise ValueError(
            "the token is not set with `profiles set` (it would end up in your shell history); "
            "use `valyent auth login --profile NAME` or `--token-stdin`"
        )
    if key not in valid:
        raise ValueError(f"unknown key {key!r}; valid keys: {', '.join(valid)}")
    return key


def check_profile_name(name: str) -> str:
    if not isinstance(name, str) or not _PROFILE_NAME.match(name):
        raise ValueError(
            f"invalid profile name {name!r}: use 1-63 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return name


def check_transport_safety(settings: Settings) -> None:
    """Refuse to send the token over plain http to a host that is not loopback, unless allow_http says so.

    The CLI calls this before it builds a client. Checks the API endpoint and the machine agent template, since
    both receive the token.
    """
    if not settings.token or settings.allow_http:
        return
    from urllib.parse import urlsplit

    for name, url in (("endpoint", settings.endpoint), ("initd_endpoint", settings.initd_endpoint)):
        if not url:
            continue
        parts = urlsplit(url.replace("{machine_id}", "machine"))
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            source = settings.sources.get(name, DEFAULT)
            raise InsecureTransportError(
                f"refusing to send the API token over plain http to {parts.hostname} ({name} from {source}: {url}). "
                f"Use https, or allow it explicitly: --allow-http, `valyent profiles set allow_http true` or {ENV_ALLOW_HTTP}=1"
            )


# ---------------------------------------------------------------------------------------------------------------
# Reading TOML


def _decode_error(path: Path, exc: Exception, data: bytes | None = None) -> ConfigError:
    if isinstance(exc, UnicodeDecodeError) and data is not None:
        line = data[: exc.start].count(b"\n") + 1
        return ConfigError(path, line, "the file is not valid UTF-8 text; fix or remove it")
    text = str(exc)
    match = _TOML_POSITION.search(text)
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


def _check_config_shape(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    active = doc.get("active")
    if active is not None and not isinstance(active, str):
        raise ConfigError(path, _key_line(path, "active"), "`active` must be a profile name (a string)")
    profiles = doc.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(path, _key_line(path, "profiles"), "`profiles` must be a table of [profiles.NAME] tables")
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise ConfigError(path, _key_line(path, name, "profiles"), f"profile {name!r} must be a table")
    return doc


# ---------------------------------------------------------------------------------------------------------------
# The profile store


class ConfigStore:
    """config.toml: read without a lock (writes are atomic renames), modified under an exclusive lock.

    ``with store.edit() as doc:`` reads the current file under ``config.toml.lock``, lets the caller change the
    dict, then writes it atomically (temporary file in the same directory, fsync, rename) with mode 0600 in a
    0700 directory. Unknown keys survive a rewrite; comments do not (tomli-w cannot keep them). A file that does
    not parse is never overwritten. Concurrent writers serialise on the lock, so none loses another's change.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else config_path()

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def load(self) -> dict[str, Any]:
        doc = _read_toml(self.path)
        if doc is None:
            return {}
        return _check_config_shape(self.path, doc)

    def active(self) -> str | None:
        return self.load().get("active")

    def profiles(self) -> dict[str, dict[str, Any]]:
        return self.load().get("profiles", {})

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        self._ensure_dir()
        with self._locked():
            doc = self.load()
            before = copy.deepcopy(doc)
            yield doc
            if doc != before:
                self._write(doc)

    def _ensure_dir(self) -> None:
        directory = self.path.parent
        if directory.is_dir():
            # It holds tokens: one of ours that is open to others (made by hand, or by an old version) is tightened.
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
    def _locked(self) -> Iterator[None]:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(self.lock_path, None, f"cannot open the lock file: {exc.strerror or exc}") from None
        try:
            _lock(fd)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, doc: dict[str, Any]) -> None:
        import tempfile

        import tomli_w

        data = tomli_w.dumps(_ordered(doc)).encode("utf-8")
        directory = self.path.parent
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            tmp = None
        except OSError as exc:
            raise ConfigError(
                self.path,
                None,
                f"could not write the configuration ({exc.strerror or exc}); the previous file is unchanged",
            ) from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        _fsync_dir(directory)


def _ordered(doc: dict[str, Any]) -> dict[str, Any]:
    """`active` first, then other top-level keys, then the profiles: the order a person expects to read."""
    out: dict[str, Any] = {}
    if doc.get("active") is not None:
        out["active"] = doc["active"]
    for key, value in doc.items():
        if key not in ("active", "profiles"):
            out[key] = value
    if doc.get("profiles"):
        out["profiles"] = doc["profiles"]
    return out


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


def _usage(exc: ValueError, path: Path | None = None) -> ConfigError:
    return ConfigError(str(exc), path=path)


def _existing(doc: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    profiles = doc.get("profiles", {})
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none yet; create one with `valyent profiles create NAME`"
        raise ConfigError(f"no profile named {name!r} in {path} (profiles: {known})")
    return profiles[name]


# Profile operations used by the commands (and by `valyent local`). Each is one locked read-modify-write.


def list_profiles() -> tuple[str | None, dict[str, dict[str, Any]]]:
    """(active profile name, {name: table}) as stored."""
    doc = ConfigStore().load()
    return doc.get("active"), doc.get("profiles", {})


def get_profile(name: str) -> dict[str, Any]:
    store = ConfigStore()
    return dict(_existing(store.load(), name, store.path))


def create_profile(name: str, values: Mapping[str, Any], *, activate: bool = False) -> bool:
    """Create a profile; make it active when asked or when no profile is active. Returns whether it is active."""
    try:
        check_profile_name(name)
        clean = {key: check_profile_value(key, value) for key, value in values.items() if value is not None}
    except ValueError as exc:
        raise _usage(exc) from None
    store = ConfigStore()
    with store.edit() as doc:
        profiles = doc.setdefault("profiles", {})
        if name in profiles:
            raise ConfigError(
                f"profile {name!r} already exists; change it with `valyent profiles set KEY VALUE --profile {name}`"
            )
        profiles[name] = clean
        if activate or not doc.get("active") or doc.get("active") not in profiles:
            doc["active"] = name
            return True
        return False


def delete_profile(name: str) -> bool:
    """Delete a profile. Returns True when it was the active one (no profile is active afterwards)."""
    store = ConfigStore()
    with store.edit() as doc:
        _existing(doc, name, store.path)
        del doc["profiles"][name]
        if doc.get("active") == name:
            del doc["active"]
            return True
        return False


def use_profile(name: str) -> None:
    set_active(name)


def set_active(name: str | None) -> None:
    """Make ``name`` the active profile, or leave none active (None)."""
    store = ConfigStore()
    with store.edit() as doc:
        if name is None:
            doc.pop("active", None)
        else:
            _existing(doc, name, store.path)
            doc["active"] = name


def set_profile_value(profile: str, key: str, value: Any) -> None:
    """Set one key of an existing profile (validated, strings coerced); ``value=None`` removes the key."""
    if value is None:
        unset_profile_value(profile, key)
        return
    try:
        check_key(key)
        value = check_profile_value(key, value)
    except ValueError as exc:
        raise _usage(exc) from None
    store = ConfigStore()
    with store.edit() as doc:
        _existing(doc, profile, store.path)[key] = value


def unset_profile_value(profile: str, key: str) -> bool:
    """Remove one key from a profile. Returns whether it was set."""
    try:
        check_key(key)
    except ValueError as exc:
        raise _usage(exc) from None
    store = ConfigStore()
    with store.edit() as doc:
        table = _existing(doc, profile, store.path)
        return table.pop(key, None) is not None


def save_login(profile: str, token: str, **values: Any) -> bool:
    """Store a checked token (and endpoint/namespace) in a profile, creating it if needed. Returns whether it
    became the active profile (it does when no profile is active)."""
    try:
        check_profile_name(profile)
        clean = {key: check_profile_value(key, value) for key, value in values.items() if value is not None}
        clean["token"] = check_token(token)
    except ValueError as exc:
        raise _usage(exc) from None
    store = ConfigStore()
    with store.edit() as doc:
        profiles = doc.setdefault("profiles", {})
        profiles.setdefault(profile, {}).update(clean)
        if not doc.get("active") or doc["active"] not in profiles:
            doc["active"] = profile
            return True
        return False


def save_local_profile(
    endpoint: str, token: str, initd_endpoint: str, fleet: str = "default", activate: bool = True,
    data_dir: str | None = None,
    namespace: str | None = None,
) -> str | None:
    """Write (or refresh) the ``local`` profile for the sandbox. Returns the profile that was active before, so
    that ``valyent local stop`` can switch back to it. Other keys of an existing local profile are kept."""
    try:
        clean = {
            "endpoint": check_profile_value("endpoint", endpoint),
            "token": check_token(token),
            "initd_endpoint": check_profile_value("initd_endpoint", initd_endpoint),
            "fleet": check_profile_value("fleet", fleet),
            "local": True,
        }
        if data_dir is not None:
            clean["data_dir"] = check_profile_value("data_dir", data_dir)
        if namespace:  # the sandbox's own: namespace-scoped commands (secrets) work without flags
            clean["namespace"] = check_profile_value("namespace", namespace)
    except ValueError as exc:
        raise _usage(exc) from None
    store = ConfigStore()
    with store.edit() as doc:
        previous = doc.get("active")
        doc.setdefault("profiles", {}).setdefault(LOCAL_PROFILE, {}).update(clean)
        if activate:
            doc["active"] = LOCAL_PROFILE
        return previous


def selected_profile(flag: str | None = None) -> tuple[str | None, str]:
    """The profile a command addresses and where that choice came from: --profile ("flag"), $VALYENT_PROFILE
    ("environment"), the file's ``active`` marker ("profile"), or none ("default")."""
    return selected_profile_from(ConfigStore().load(), flag)


# ---------------------------------------------------------------------------------------------------------------
# The archived Go CLI's configuration


def parse_go_config(text: str) -> dict[str, str]:
    """Read the archived Go CLI's ``~/.valyent/config.yaml``.

    That CLI wrote two flat keys, ``key`` (the token) and ``namespace``. Rather than depend on a YAML library for
    two scalars, this reads flat ``name: value`` lines: plain, single- or double-quoted values, ``#`` comments,
    a ``---`` document marker. Indented lines (nested YAML) are ignored: they are not keys the Go CLI wrote.
    """
    out: dict[str, str] = {}
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#") or raw.strip() in ("---", "..."):
            continue
        if raw[0].isspace():
            continue
        name, sep, rest = raw.partition(":")
        if not sep:
            continue
        name = name.strip().strip("'\"")
        rest = rest.strip()
        if rest[:1] in ("'", '"'):
            value = _yaml_quoted(rest)
        else:
            value = re.split(r"\s+#", rest, maxsplit=1)[0].strip()
        out[name] = value
    return out


def _yaml_quoted(text: str) -> str:
    """The value of a YAML quoted scalar: '' escapes a quote in single quotes; \\" and \\\\ in double quotes."""
    quote, out, i = text[0], [], 1
    while i < len(text):
        ch = text[i]
        if quote == "'" and ch == "'":
            if text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            break
        if quote == '"' and ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if quote == '"' and ch == '"':
            break
        out.append(ch)
        i += 1
    return "".join(out)


def import_go_config(path: Path | None = None, name: str = "default", *, activate: bool = False) -> tuple[str, bool]:
    """Turn the Go CLI's config into a profile. Returns (name, whether it is now active)."""
    path = Path(path) if path is not None else go_config_path()
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "no such file: nothing to import (the Go CLI keeps ~/.valyent/config.yaml)")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read the file: {getattr(exc, 'strerror', None) or exc}") from None
    values = parse_go_config(text)
    token = values.get("key")
    if not token:
        raise ConfigError(path, None, "no `key` (the API token) in the file: nothing to import")
    profile: dict[str, Any] = {"token": token}
    if values.get("namespace"):
        profile["namespace"] = values["namespace"]
    try:
        profile = {key: check_profile_value(key, value) for key, value in profile.items()}
    except ValueError as exc:
        raise ConfigError(path, None, str(exc)) from None
    active = create_profile(name, profile, activate=activate)
    return name, active


# ---------------------------------------------------------------------------------------------------------------
# The project file


def _check_machine(path: Path, table: Any) -> None:
    def bad(key: str, expected: str) -> ConfigError:
        return ConfigError(path, _key_line(path, key, "machine"), f"[machine] {key} must be {expected}")

    if not isinstance(table, dict):
        raise ConfigError(path, _key_line(path, "machine"), "`machine` must be a table: [machine]")
    for key, value in table.items():
        if key not in MACHINE_KEYS:
            raise ConfigError(
                path,
                _key_line(path, key, "machine"),
                f"unknown key {key!r} in [machine]; valid keys: {', '.join(MACHINE_KEYS)}",
            )
        expected = MACHINE_KEYS[key]
        if key in ("image", "region", "cpu_kind", "user", "stop_signal"):
            ok = isinstance(value, str) and bool(value.strip())
        elif key == "memory" and isinstance(value, str):
            ok = bool(value.strip())  # a size such as "1gb": `machines create` parses it like --memory
        elif key in ("cpus", "memory", "memory_mb"):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        elif key in ("max_retries", "stop_timeout"):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif key in ("auto_destroy", "skip_start", "enable_gateway"):
            ok = isinstance(value, bool)
        elif key == "restart":
            ok = value in ("always", "on-failure", "never")
        elif key in ("secrets", "volumes", "networks"):
            ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
        elif key in ("health_interval", "health_timeout"):
            ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 1) or (
                isinstance(value, str) and bool(value.strip()))
        elif key == "health_retries":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        elif key in ("labels", "annotations"):
            ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        elif key == "env":
            ok = (isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value)) or (
                isinstance(value, dict) and all(isinstance(v, (str, int, float, bool)) for v in value.values())
            )
        else:  # cmd, entrypoint, health_cmd
            ok = isinstance(value, str) and _splits(value) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
        if not ok:
            raise bad(key, expected)


def _splits(command: str) -> bool:
    """Whether a command string splits like a shell line (no unclosed quote) into at least one word."""
    import shlex

    try:
        return bool(shlex.split(command))
    except ValueError:
        return False


def load_project(path: Path) -> dict[str, Any]:
    """Parse and check a valyent.toml. ConfigError naming the file (and line) when it is not right."""
    doc = _read_toml(path) or {}
    for key, value in doc.items():
        if key in PROJECT_FORBIDDEN:
            raise ConfigError(
                path,
                _key_line(path, key),
                f"`{key}` is not allowed in a project file (a cloned repository must not choose where your token "
                f"goes); set it in a profile or with {ENV_ENDPOINT}/--endpoint",
            )
        if key not in PROJECT_KEYS:
            raise ConfigError(
                path, _key_line(path, key), f"unknown key {key!r}; valid keys: {', '.join(PROJECT_KEYS)}"
            )
        if key == "machine":
            _check_machine(path, value)
        else:
            try:
                _check_word(value, key)
            except ValueError as exc:
                raise ConfigError(path, _key_line(path, key), str(exc)) from None
    return doc


def machine_defaults(project: Mapping[str, Any]) -> dict[str, Any]:
    """The [machine] table normalised for `machines create`: env as ["K=V", ...], cmd/entrypoint as lists."""
    import shlex

    table = dict(project.get("machine") or {})
    env = table.get("env")
    if isinstance(env, dict):
        table["env"] = [f"{k}={_env_value(v)}" for k, v in env.items()]
    for key in ("cmd", "entrypoint", "health_cmd"):
        if isinstance(table.get(key), str):
            table[key] = shlex.split(table[key])
    return table


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# Precedence


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None  # an empty variable (common in CI templates) counts as unset


def load_settings(
    *,
    profile: str | None = None,
    endpoint: str | None = None,
    namespace: str | None = None,
    fleet: str | None = None,
    token: str | None = None,
    allow_http: bool | None = None,
) -> Settings:
    """Resolve every setting: flag > environment > project file > active profile > default.

    The keyword arguments are the command-line flags (None when not given). Raises ConfigError for a broken
    file, an unknown profile or an invalid value, naming where the bad value came from.
    """
    store = ConfigStore()
    doc = store.load()
    profiles: dict[str, dict[str, Any]] = doc.get("profiles", {})
    name, name_source = selected_profile_from(doc, profile)
    if name is not None and name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        origin = {FLAG: "--profile", ENVIRONMENT: ENV_PROFILE}.get(name_source, f"`active` in {store.path}")
        raise ConfigError(
            f"no profile named {name!r} (from {origin}); profiles: {known}. "
            "Create it with `valyent profiles create NAME` or pick one with `valyent profiles use NAME`"
        )
    project_path = find_project_file()
    project = load_project(project_path) if project_path else {}
    return _build(
        store, name, name_source, profiles.get(name, {}) if name else {}, project, project_path,
        endpoint=endpoint, namespace=namespace, fleet=fleet, token=token, allow_http=allow_http,
    )


def login_settings(*, profile: str | None = None, endpoint: str | None = None, namespace: str | None = None) -> Settings:
    """What `auth login` checks a new token against, by the same precedence as :func:`load_settings`, except that
    the target profile may not exist yet (it is then ``default``, or the name given), the project file is left out
    (its values do not belong in a saved profile), and the token is left to the caller (``token`` is None)."""
    store = ConfigStore()
    doc = store.load()
    name, name_source = selected_profile_from(doc, profile)
    if name is None:
        name, name_source = "default", DEFAULT
    try:
        check_profile_name(name)
    except ValueError as exc:
        raise _usage(exc) from None
    table = dict(doc.get("profiles", {}).get(name, {}))
    table.pop("token", None)
    settings = _build(store, name, name_source, table, {}, None, endpoint=endpoint, namespace=namespace, with_token=False)
    return settings


def _build(
    store: ConfigStore,
    name: str | None,
    name_source: str,
    table: Mapping[str, Any],
    project: Mapping[str, Any],
    project_path: Path | None,
    *,
    endpoint: str | None = None,
    namespace: str | None = None,
    fleet: str | None = None,
    token: str | None = None,
    allow_http: bool | None = None,
    with_token: bool = True,
) -> Settings:
    sources: dict[str, str] = {"profile": name_source}

    def resolve(key: str, flag: Any, env_name: str | None, *, in_project: bool, default: Any) -> Any:
        candidates: list[tuple[str, Any]] = [(FLAG, flag)]
        if env_name:
            candidates.append((ENVIRONMENT, _env(env_name)))
        if in_project:
            candidates.append((PROJECT, project.get(key)))
        candidates.append((PROFILE, table.get(key)))
        for source, value in candidates:
            if value is None:
                continue
            try:
                value = check_profile_value(key, value)
            except ValueError as exc:
                raise _bad_setting(exc, source, env_name, store.path, name, project_path, key) from None
            sources[key] = source
            return value
        sources[key] = DEFAULT
        return default

    resolved_endpoint = resolve("endpoint", endpoint, ENV_ENDPOINT, in_project=False, default=DEFAULT_ENDPOINT)
    # The default agent host belongs to Valyent Cloud: another server never gets the token sent there.
    initd_default = DEFAULT_INITD_ENDPOINT if resolved_endpoint.rstrip("/") == DEFAULT_ENDPOINT else None
    return Settings(
        profile=name,
        endpoint=resolved_endpoint,
        token=resolve("token", token, ENV_TOKEN, in_project=False, default=None) if with_token else None,
        namespace=resolve("namespace", namespace, ENV_NAMESPACE, in_project=True, default=None),
        fleet=resolve("fleet", fleet, ENV_FLEET, in_project=True, default=None),
        region=resolve("region", None, ENV_REGION, in_project=True, default=None),
        initd_endpoint=resolve("initd_endpoint", None, ENV_INITD, in_project=False, default=initd_default),
        timeout=resolve("timeout", None, None, in_project=False, default=DEFAULT_TIMEOUT),
        allow_http=resolve("allow_http", allow_http, ENV_ALLOW_HTTP, in_project=False, default=False),
        is_local=bool(name is not None and (name == LOCAL_PROFILE or table.get("local") is True)),
        auth_scheme=resolve("auth_scheme", None, ENV_AUTH_SCHEME, in_project=False, default="bearer"),
        cpu_kind=resolve("cpu_kind", None, ENV_CPU_KIND, in_project=False, default=None),
        ca_cert=resolve("ca_cert", None, ENV_CA_CERT, in_project=False, default=None),
        client_cert=resolve("client_cert", None, ENV_CLIENT_CERT, in_project=False, default=None),
        client_key=resolve("client_key", None, ENV_CLIENT_KEY, in_project=False, default=None),
        project=dict(project),
        project_path=project_path,
        sources=sources,
        config_path=store.path,
    )


def selected_profile_from(doc: Mapping[str, Any], flag: str | None) -> tuple[str | None, str]:
    if flag:
        return flag, FLAG
    env = _env(ENV_PROFILE)
    if env:
        return env, ENVIRONMENT
    if doc.get("active"):
        return doc["active"], PROFILE
    return None, DEFAULT


def _bad_setting(
    exc: ValueError,
    source: str,
    env_name: str | None,
    config: Path,
    profile: str | None,
    project_path: Path | None,
    key: str,
) -> ConfigError:
    if source == FLAG:
        return ConfigError(f"--{key.replace('_', '-')}: {exc}")
    if source == ENVIRONMENT:
        return ConfigError(f"{env_name}: {exc}")
    if source == PROJECT and project_path is not None:
        return ConfigError(project_path, _key_line(project_path, key), str(exc))
    return ConfigError(config, _key_line(config, key, f"profiles.{profile}"), f"profile {profile!r}: {exc}")
