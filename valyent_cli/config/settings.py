"""Precedence: the settings a command runs with, each resolved as flag > environment > project file > active
profile > default, in exactly one place (:func:`load_settings`); and the plain-http rule they must pass before a
client is built (:func:`check_transport_safety`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from valyent_cli.config.errors import ConfigError, InsecureTransportError
from valyent_cli.config.keys import (
    DEFAULT, ENV_ALLOW_HTTP, ENV_AUTH_SCHEME, ENV_CA_CERT, ENV_CLIENT_CERT, ENV_CLIENT_KEY, ENV_CPU_KIND, ENV_ENDPOINT,
    ENV_FLEET, ENV_INITD, ENV_NAMESPACE, ENV_PROFILE, ENV_REGION, ENV_TOKEN, ENVIRONMENT, FLAG, PROFILE, PROJECT, _env,
)
from valyent_cli.config.paths import find_project_file
from valyent_cli.config.profiles import _usage, selected_profile_from
from valyent_cli.config.project import load_project, machine_defaults
from valyent_cli.config.store import ConfigStore
from valyent_cli.config.toml import _key_line
from valyent_cli.config.values import check_profile_name, check_profile_value, fingerprint, is_loopback_host
from valyent_cli.defaults import (
    DEFAULT_AUTH_SCHEME, DEFAULT_ENDPOINT, DEFAULT_INITD_ENDPOINT, DEFAULT_PROFILE, DEFAULT_TIMEOUT, LOCAL_PROFILE,
)


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
    auth_scheme: str = DEFAULT_AUTH_SCHEME
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
        name, name_source = DEFAULT_PROFILE, DEFAULT
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
        auth_scheme=resolve("auth_scheme", None, ENV_AUTH_SCHEME, in_project=False, default=DEFAULT_AUTH_SCHEME),
        cpu_kind=resolve("cpu_kind", None, ENV_CPU_KIND, in_project=False, default=None),
        ca_cert=resolve("ca_cert", None, ENV_CA_CERT, in_project=False, default=None),
        client_cert=resolve("client_cert", None, ENV_CLIENT_CERT, in_project=False, default=None),
        client_key=resolve("client_key", None, ENV_CLIENT_KEY, in_project=False, default=None),
        project=dict(project),
        project_path=project_path,
        sources=sources,
        config_path=store.path,
    )


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
