"""The state one command run carries: global flags, resolved settings, the API client, the output."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from valyent_cli.cli.errors import CliError
from valyent_cli.cli.exits import Exit

if TYPE_CHECKING:
    from valyent_cli.api import Client
    from valyent_cli.cli.output import Output
    from valyent_cli.config import Settings


class AppContext:
    def __init__(
        self,
        *,
        profile: str | None = None,
        endpoint: str | None = None,
        namespace: str | None = None,
        allow_http: bool | None = None,
        debug: bool = False,
        no_color: bool = False,
    ) -> None:
        self.profile = profile
        self.endpoint = endpoint
        self.namespace = namespace
        self.allow_http = allow_http
        self.debug = debug
        self.no_color = no_color
        self._client: Client | None = None

    @cached_property
    def settings(self) -> Settings:
        from valyent_cli.config import load_settings

        return load_settings(profile=self.profile, endpoint=self.endpoint, namespace=self.namespace,
                             allow_http=self.allow_http)

    def output(self, *, json: bool = False, quiet: bool = False) -> Output:
        from valyent_cli.cli.output import Output

        if json and quiet:
            from valyent_cli.cli.errors import UsageError

            raise UsageError("choose one of --json and -q/--quiet")

        return Output(json=json, quiet=quiet, no_color=self.no_color)

    @property
    def debug_hook(self) -> Any:
        """What reports each HTTP exchange on stderr with --debug (an Exchange never holds the token), else None."""
        return _debug_hook if self.debug else None

    def connect(self) -> Client:
        """The API client for this run, made on the first call and kept for the next ones.

        This is the one step with effects: with the `local` profile and the sandbox down, it starts the sandbox
        (:func:`valyent_cli.local.autostart.ensure_sandbox`), which may save the profile's new token; the settings
        it returns replace :attr:`settings`. Reading :attr:`settings` or any other attribute starts nothing.
        """
        if self._client is not None:
            return self._client
        settings = self.settings
        from valyent_cli.config import check_transport_safety

        check_transport_safety(settings)
        if not settings.token and (settings.is_valyent_cloud or settings.is_local):
            # Elsewhere (a self-hosted Ravel with no `bearer_token`) a profile without a token sends no header.
            raise CliError(
                "not logged in: no API token",
                Exit.AUTH,
                hint="run `valyent auth login`, set VALYENT_API_TOKEN, or use the sandbox: `valyent local start`",
            )
        if settings.is_local:
            settings = self._start_sandbox(settings)
            self.settings = settings
        if settings.sources.get("token") == "environment" and settings.profile:
            from valyent_cli import config
            from valyent_cli.cli import errors

            try:
                overridden = (config.list_profiles()[1].get(settings.profile) or {}).get("token")
            except config.ConfigError:
                overridden = None
            if overridden:  # a refusal then names the token that was sent, not the profile's
                errors.token_origin = f"VALYENT_API_TOKEN, which overrides the token of profile {settings.profile}"
        self._client = settings.client(debug_hook=self.debug_hook)
        return self._client

    def require_initd(self) -> None:
        """`fs` talks to a machine's agent (initd). Only Valyent Cloud has a default host for it: elsewhere the
        profile must name one, or the token would go to a host that has nothing to do with the endpoint."""
        settings = self.settings
        if not settings.initd_endpoint:
            raise CliError(
                f"this profile has no initd_endpoint, and {settings.endpoint} is not Valyent Cloud: there is no "
                "default host for a machine's agent (initd, TCP 64242 inside each machine; Ravel has no proxy for it)",
                Exit.USAGE,
                hint="if your operator runs an initd proxy, set its URL template: "
                     "`valyent profiles set initd_endpoint 'https://{machine_id}.initd.example.com'` "
                     "(or VALYENT_INITD_URL)",
            )

    def _start_sandbox(self, settings: Settings) -> Settings:
        from valyent_cli.local.autostart import AutostartError, ensure_sandbox, sandbox_data_dir

        try:
            return ensure_sandbox(settings, data_dir=sandbox_data_dir(None), note=self.output().note)
        except AutostartError as exc:
            raise CliError(f"could not start the local sandbox: {exc}", Exit.ERROR,
                           hint="see `valyent local status`, or run it in the foreground: valyent local serve") from None


def _debug_hook(exchange: Any) -> None:
    from valyent_cli.cli.output import Output

    Output().debug(str(exchange))
