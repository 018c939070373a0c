"""Every default value of the CLI in one place: what a setting is when nothing (flag, environment, project file,
profile) says otherwise, and what a new machine gets when neither the flags nor valyent.toml choose.

Standard library only (in fact, no imports at all), so that ``valyent_cli.api`` can use it without importing
``valyent_cli.config``, and the cheapest module to import.
"""

#: the API base URL: Valyent Cloud
DEFAULT_ENDPOINT = "https://console.valyent.cloud/v1"
#: a machine's agent (initd) on Valyent Cloud; only used when the endpoint is Valyent Cloud's
DEFAULT_INITD_ENDPOINT = "https://{machine_id}-initd.valyent.dev"
#: request timeout, in seconds
DEFAULT_TIMEOUT = 30.0
#: how many times a failed request is retried (when the failure allows it)
DEFAULT_MAX_RETRIES = 2
#: how the token is sent (see ``valyent_cli.config.AUTH_SCHEMES``)
DEFAULT_AUTH_SCHEME = "bearer"

#: the region of a new machine when Settings.region is None (the setting itself defaults to None)
DEFAULT_REGION = "gra-1"
#: the guest of a new machine
DEFAULT_CPU_KIND = "shared"
DEFAULT_CPUS = 1
DEFAULT_MEMORY_MB = 512

#: the profile `valyent local start` writes, and the fleet it points at
LOCAL_PROFILE = "local"
DEFAULT_LOCAL_FLEET = "default"
#: the profile `auth login` and `profiles import-go` write when none is named
DEFAULT_PROFILE = "default"
