"""Configuration: profiles in ``config.toml``, the project file ``valyent.toml``, and precedence.

Everything that decides which endpoint, token, namespace and fleet a command uses lives in this package, so that
the rule "flag > environment > project file > active profile > default" is applied in exactly one place
(:func:`load_settings`). The file format is documented in ``docs/configuration.md``. One module per
responsibility:

- ``keys``: environment variable names, value sources, the keys a profile / valyent.toml / [machine] may hold;
- ``errors``: :class:`ConfigError` (exit code 2) and :class:`InsecureTransportError`;
- ``paths``: where config.toml, the Go CLI's config.yaml and the nearest valyent.toml are;
- ``values``: checks of single values, token fingerprint and mask, the plain-http rule;
- ``toml``: reading TOML with file-and-line errors, atomic 0600 writes under a lock file;
- ``store``: :class:`ConfigStore`, config.toml as a document;
- ``profiles``: the profile operations the commands use;
- ``goimport``: importing the archived Go CLI's config;
- ``project``: valyent.toml and its machine defaults;
- ``settings``: :class:`Settings` and precedence (:func:`load_settings`, :func:`login_settings`).

Default values live in :mod:`valyent_cli.defaults` (re-exported here). This package is imported by every
command, including ``valyent --help``: it imports nothing heavy at module level (tomllib, tomli_w, platformdirs,
tempfile and ipaddress are imported where they are used) and never imports httpx, typer or rich.

Every name is re-exported here: import from ``valyent_cli.config``. To monkeypatch a function in a test, patch
the module that defines it (``valyent_cli.config.store``, ...): the name here is only a second reference.
"""

from __future__ import annotations

from valyent_cli.config.errors import ConfigError, InsecureTransportError
from valyent_cli.config.goimport import import_go_config, parse_go_config
from valyent_cli.config.keys import (
    AUTH_SCHEMES,
    DEFAULT,
    ENV_ALLOW_HTTP,
    ENV_AUTH_SCHEME,
    ENV_CA_CERT,
    ENV_CLIENT_CERT,
    ENV_CLIENT_KEY,
    ENV_CONFIG_DIR,
    ENV_CPU_KIND,
    ENV_ENDPOINT,
    ENV_FLEET,
    ENV_INITD,
    ENV_NAMESPACE,
    ENV_PROFILE,
    ENV_REGION,
    ENV_TOKEN,
    ENVIRONMENT,
    FLAG,
    MACHINE_KEYS,
    PROFILE,
    PROFILE_KEYS,
    PROJECT,
    PROJECT_FORBIDDEN,
    PROJECT_KEYS,
    SETTABLE_KEYS,
)
from valyent_cli.config.paths import CONFIG_FILE, PROJECT_FILE, config_dir, config_path, find_project_file, go_config_path
from valyent_cli.config.profiles import (
    create_profile,
    delete_profile,
    get_profile,
    list_profiles,
    save_local_profile,
    save_login,
    selected_profile,
    selected_profile_from,
    set_active,
    set_profile_value,
    unset_profile_value,
    use_profile,
)
from valyent_cli.config.project import load_project, machine_defaults
from valyent_cli.config.settings import Settings, check_transport_safety, load_settings, login_settings
from valyent_cli.config.store import ConfigStore
from valyent_cli.config.values import (
    check_key,
    check_profile_name,
    check_profile_value,
    check_token,
    fingerprint,
    is_loopback_host,
    mask_token,
    parse_bool,
)
from valyent_cli.defaults import (
    DEFAULT_ENDPOINT,
    DEFAULT_INITD_ENDPOINT,
    DEFAULT_REGION,
    DEFAULT_TIMEOUT,
    LOCAL_PROFILE,
)

__all__ = [
    "AUTH_SCHEMES", "CONFIG_FILE", "DEFAULT", "DEFAULT_ENDPOINT", "DEFAULT_INITD_ENDPOINT", "DEFAULT_REGION",
    "DEFAULT_TIMEOUT", "ENVIRONMENT", "ENV_ALLOW_HTTP", "ENV_AUTH_SCHEME", "ENV_CA_CERT", "ENV_CLIENT_CERT",
    "ENV_CLIENT_KEY", "ENV_CONFIG_DIR", "ENV_CPU_KIND", "ENV_ENDPOINT", "ENV_FLEET", "ENV_INITD", "ENV_NAMESPACE",
    "ENV_PROFILE", "ENV_REGION", "ENV_TOKEN", "FLAG", "LOCAL_PROFILE", "MACHINE_KEYS", "PROFILE", "PROFILE_KEYS",
    "PROJECT", "PROJECT_FILE", "PROJECT_FORBIDDEN", "PROJECT_KEYS", "SETTABLE_KEYS", "ConfigError", "ConfigStore",
    "InsecureTransportError", "Settings", "check_key", "check_profile_name", "check_profile_value", "check_token",
    "check_transport_safety", "config_dir", "config_path", "create_profile", "delete_profile", "find_project_file",
    "fingerprint", "get_profile", "go_config_path", "import_go_config", "is_loopback_host", "list_profiles",
    "load_project", "load_settings", "login_settings", "machine_defaults", "mask_token", "parse_bool",
    "parse_go_config", "save_local_profile", "save_login", "selected_profile", "selected_profile_from",
    "set_active", "set_profile_value", "unset_profile_value", "use_profile",
]
