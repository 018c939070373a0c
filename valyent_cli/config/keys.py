"""The names of the settings: environment variables, the sources a value can come from, and the keys a profile,
the project file and its [machine] table may hold (with the one-line descriptions shown when a key is rejected)."""

from __future__ import annotations

import os

from valyent_cli.defaults import DEFAULT_REGION

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
    "timeout": "request timeout: seconds, or a duration such as 30s or 2m",
    "allow_http": "allow sending the token over plain http to a non-loopback host (true/false)",
    "local": "this profile points at the local sandbox (true/false)",
    "data_dir": "the local sandbox's data directory (written by `valyent local start`)",
}
# `profiles set` refuses the token: a value on the command line ends up in shell history and `ps`.
SETTABLE_KEYS = tuple(k for k in PROFILE_KEYS if k != "token")

# Top-level keys of valyent.toml. endpoint, token and initd_endpoint are refused on purpose: a project file comes
# with a cloned repository, and one that could set the endpoint could send your token to a server of its choosing.
PROJECT_KEYS = ("fleet", "region", "namespace", "machine", "deploy", "build")
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
    "stop_timeout": "integer >= 0 (seconds), or a duration such as \"10s\"",
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
# Keys of the [deploy] table of valyent.toml: how `valyent deploy` rolls the [machine] out (apps/spec.py reads them).
DEPLOY_KEYS: dict[str, str] = {
    "app": "string: the app's name (default: the fleet's name)",
    "count": "integer >= 1: how many machines of the app run",
    "strategy": "one of rolling, bluegreen, canary, immediate",
    "max_unavailable": "integer >= 1, or a percentage of count such as \"33%\"",
    "wait_timeout": "integer >= 1 (seconds), or a duration such as \"2m\"",
    "release_command": "list of strings, or a string (split like a shell)",
}
# Keys of the [build] table of valyent.toml: `valyent deploy` builds the image from this directory first.
BUILD_KEYS: dict[str, str] = {
    "context": "string: the build context directory, relative to valyent.toml",
    "image": "string: the name of the image to build (default: the app's name)",
    "dockerfile": "string: the Dockerfile, relative to the context",
    "registry": "string: the registry to push to",
    "target": "string: the build stage to stop at",
}


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None  # an empty variable (common in CI templates) counts as unset
