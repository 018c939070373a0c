"""The state one command run carries: global flags, resolved settings, the API client, the output."""

from __future__ import annotations

import sys
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

    @cached_property
    def settings(self) -> Settings:
        from valyent_cli.config import load_settings

        return load_settings(profile=self.profile, endpoint=self.endpoint, namespace=self.namespace,
                             allow_http=self.allow_http)

    def output(self, *, json: bool = False, quiet: bool = False) -> Output:
        from valyent_cli.cli.output import Output

        return Output(json=json, quiet=quiet, no_color=self.no_color)

    @property
    def debug_hook(self) -> Any:
        """What reports each HTTP exchange on stderr with --debug (an Exchange never holds the token), else None."""
        return _debug_hook if self.debug else None

    @cached_property
    def client(self) -> Client:
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
            self._ensure_local(settings)
        return settings.client(debug_hook=self.debug_hook)

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

    def _ensure_local(self, settings: Settings) -> None:
        """Start the sandbox when the local profile is used while it is down (a refused connect costs ~0.1 ms)."""
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(settings.endpoint)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        from valyent_cli.local.daemon import DaemonError, ensure_running
        from valyent_cli.local.runner import ServeError

        sys.stderr.write(f"Starting the local sandbox on {host}:{port}...\n")
        try:
            info = ensure_running(port=port, host=host)
        except (DaemonError, ServeError) as exc:
            raise CliError(f"could not start the local sandbox: {exc}", Exit.ERROR,
                           hint="see `valyent local status`, or run it in the foreground: valyent local serve") from None
        token = info.get("token")
        if token and token != settings.token and settings.sources.get("token") == "profile":
            # A new data dir means a new token: keep the local profile in step rather than fail with 401.
            from valyent_cli.config import set_profile_value

            if settings.profile:
                set_profile_value(settings.profile, "token", token)
            settings.token = token


def _debug_hook(exchange: Any) -> None:
    sys.stderr.write(f"[debug] {exchange}\n")
    sys.stderr.flush()
