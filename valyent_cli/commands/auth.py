"""`valyent auth`: log in (a token checked before it is saved), log out, and say which credentials are in use."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from valyent_cli import config
from valyent_cli.cli import complete
from valyent_cli.cli.errors import CliError, UsageError
from valyent_cli.cli.exits import Exit
from valyent_cli.defaults import DEFAULT_CPU_KIND

if TYPE_CHECKING:
    from valyent_cli.cli.context import AppContext
    from valyent_cli.config import Settings

app = typer.Typer(name="auth", help="Log in, log out and inspect credentials.", no_args_is_help=True)


def _app(ctx: typer.Context) -> AppContext:
    return ctx.obj


#: where a token comes from, said where one is asked for
TOKEN_SOURCES = (
    "Tokens come from the Valyent Cloud console (https://console.valyent.cloud, your account's API tokens); for "
    "your own Ravel, use the token its server is configured with; the local sandbox needs no login "
    "(`valyent local start`)."
)


def _read_token(token_stdin: bool) -> str:
    if token_stdin:
        raw = sys.stdin.read()
        flag = "--token-stdin"
    elif sys.stdin.isatty():
        from valyent_cli.cli.output import Output

        Output().note(TOKEN_SOURCES)
        raw = typer.prompt("API token", hide_input=True, err=True)
        flag = "the token"
    else:
        raise UsageError(
            "no terminal to ask for the token: pipe it in with --token-stdin, "
            f"e.g. `printenv TOKEN | valyent auth login --token-stdin`. {TOKEN_SOURCES}"
        )
    try:
        return config.check_token(raw)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


@app.command("login")
def login(
    ctx: typer.Context,
    token_stdin: Annotated[bool, typer.Option("--token-stdin", help="Read the token from stdin (for scripts).")] = False,
    endpoint: Annotated[str | None, typer.Option("--endpoint", metavar="URL", help="API base URL to log in to.")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", metavar="NAMESPACE", help="Namespace to save in the profile.")] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", metavar="PROFILE", help="Profile to save to (default: the one in use, or 'default').",
                                  autocompletion=complete.profiles)
    ] = None,
) -> None:
    """Check a token against the API, then save it in a profile.

    On a terminal the token is asked for without echo; otherwise pass it on stdin with --token-stdin. Nothing is
    saved when the API refuses the token (exit 3) or cannot be reached. Tokens come from the Valyent Cloud console
    (https://console.valyent.cloud); the local sandbox needs no login.

    Example: echo "$VALYENT_TOKEN" | valyent auth login --token-stdin --namespace acme
    """
    from valyent_cli.api import errors as api

    app_ctx = _app(ctx)
    out = app_ctx.output()
    for flag, key, value in (("--endpoint", "endpoint", endpoint), ("--namespace", "namespace", namespace)):
        if value is not None:
            try:
                config.check_profile_value(key, value)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint=f"'{flag}'") from None
    settings = config.login_settings(
        profile=profile or app_ctx.profile,
        endpoint=endpoint or app_ctx.endpoint,
        namespace=namespace or app_ctx.namespace,
    )
    token = _read_token(token_stdin)
    settings.token = token
    config.check_transport_safety(settings)

    try:
        with settings.client(token=token, debug_hook=app_ctx.debug_hook) as client:
            _list_fleets(client)
    except api.AuthError as exc:
        raise CliError(
            f"the token was refused by {settings.endpoint} (HTTP {exc.status}: {exc.message}); nothing was saved",
            Exit.AUTH,
            hint="check the token, the endpoint and the namespace",
        ) from None
    except api.ValyentError as exc:
        code = Exit.TIMEOUT if isinstance(exc, api.TimeoutError) else Exit.ERROR
        raise CliError(
            f"could not check the token against {settings.endpoint}: {exc}; nothing was saved",
            code,
            hint="check the endpoint and your network, or rerun with --debug",
        ) from None

    # Save what the token was checked against when it was given explicitly, so the profile stays consistent.
    explicit = (config.FLAG, config.ENVIRONMENT)
    values = {
        key: getattr(settings, key)
        for key in ("endpoint", "namespace", "initd_endpoint")
        if settings.sources.get(key) in explicit
    }
    became_active = config.save_login(settings.profile, token, **values)
    out.done(
        f"Logged in to {settings.endpoint} (token {config.mask_token(token)}), saved in profile {settings.profile}"
        + (" (now active)" if became_active else "")
    )
    if os.environ.get(config.ENV_TOKEN):
        out.warn(f"{config.ENV_TOKEN} is set and takes precedence over the saved token")


@app.command("logout")
def logout(ctx: typer.Context) -> None:
    """Remove the token from the profile in use (the profile itself stays).

    Example: valyent auth logout --profile work
    """
    out = _app(ctx).output()
    name, _ = config.selected_profile(_app(ctx).profile)
    if name is None:
        out.info("No profile in use: there is no saved token to remove.")
    elif config.unset_profile_value(name, "token"):
        out.done(f"Logged out: removed the token from profile {name}")
    else:
        out.info(f"Profile {name} holds no token: nothing to remove.")
    if os.environ.get(config.ENV_TOKEN):
        out.warn(f"{config.ENV_TOKEN} is still set in the environment and provides a token")


def _list_fleets(client: Any) -> None:
    """The call that checks a token. A stock Ravel with no namespace selected refuses it with a 422 on
    `query.namespace`: its auth middleware runs first, so that answer means the token was accepted."""
    from valyent_cli.api import errors as api

    try:
        client.fleets.list()
    except api.ApiError as exc:
        errors = exc.payload.get("errors") if isinstance(exc.payload, dict) else None
        if not (exc.status == 422 and isinstance(errors, list)
                and any(isinstance(e, dict) and e.get("location") == "query.namespace" for e in errors)):
            raise


def _check_api(settings: Settings, hook: Any) -> tuple[dict[str, Any], int]:
    """Ask the API for the fleet list: does it answer, and does it accept the token?"""
    from valyent_cli.api import errors as api

    if not settings.token:
        return {"ok": False, "status": "no token", "message": "not logged in"}, Exit.AUTH
    try:
        config.check_transport_safety(settings)
    except config.InsecureTransportError as exc:
        return {"ok": False, "status": "not checked", "message": exc.message}, Exit.USAGE
    started = time.monotonic()
    try:
        # A status check should answer fast: no retries and a short timeout.
        with settings.client(timeout=min(settings.timeout, 10.0), max_retries=0, debug_hook=hook) as client:
            _list_fleets(client)
    except api.AuthError as exc:
        return {"ok": False, "status": "token refused", "http_status": exc.status, "message": exc.message}, Exit.AUTH
    except api.ApiError as exc:
        return {"ok": False, "status": "error", "http_status": exc.status, "message": exc.message}, Exit.ERROR
    except api.TransportError as exc:
        return {"ok": False, "status": "unreachable", "message": str(exc)}, Exit.ERROR
    except api.ValyentError as exc:
        return {"ok": False, "status": "error", "message": str(exc)}, Exit.ERROR
    elapsed = round((time.monotonic() - started) * 1000)
    return {"ok": True, "status": "ok", "elapsed_ms": elapsed, "message": None}, Exit.OK


@app.command("status")
def status(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help="Print JSON (the token is never included).")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Do not contact the API.")] = False,
) -> None:
    """Show the profile, endpoint, namespace, fleet and token in use, where each came from, and whether the API
    answers. Exits 0 when it does and accepts the token, 3 when there is no token or it is refused, 1 when the API
    cannot be reached.

    Example: valyent auth status --json
    """
    app_ctx = _app(ctx)
    out = app_ctx.output(json=json)
    settings = app_ctx.settings
    src = settings.sources
    if offline:
        api_state: dict[str, Any] = {"ok": None, "status": "not checked", "message": "--offline"}
        code = Exit.OK if settings.token else Exit.AUTH
    else:
        api_state, code = _check_api(settings, app_ctx.debug_hook)
    obj = {
        "profile": settings.profile,
        "endpoint": settings.endpoint,
        "namespace": settings.namespace,
        "fleet": settings.fleet,
        "region": settings.region,
        "initd_endpoint": settings.initd_endpoint,
        "cpu_kind": settings.cpu_kind,
        "auth_scheme": settings.auth_scheme,
        "token_fingerprint": config.fingerprint(settings.token) if settings.token else None,
        "local": settings.is_local,
        "sources": dict(src),
        "config_file": str(settings.config_path) if settings.config_path else None,
        "project_file": str(settings.project_path) if settings.project_path else None,
        "api": api_state,
    }

    def value(key: str, shown: Any) -> str:
        source = src.get(key, config.DEFAULT)
        if key == "profile" and source == config.PROFILE:
            source = "active in the config file"
        return f"{'-' if shown is None else shown}  ({source})"

    if api_state["ok"]:
        api_line = f"ok, token accepted ({api_state['elapsed_ms']} ms)"
    else:
        detail = api_state.get("message")
        http = f"HTTP {api_state['http_status']}: " if api_state.get("http_status") else ""
        api_line = api_state["status"] + (f" ({http}{detail})" if detail else "")
    rows: list[tuple[str, Any]] = [
        ("Profile", value("profile", settings.profile)),
        ("Endpoint", value("endpoint", settings.endpoint)),
        ("Namespace", value("namespace", settings.namespace)),
        ("Fleet", value("fleet", settings.fleet)),
        ("Region", value("region", settings.region or config.DEFAULT_REGION)),
        ("CPU kind", value("cpu_kind", settings.cpu_kind or DEFAULT_CPU_KIND)),
        ("Token", value("token", config.mask_token(settings.token) if settings.token else "none")),  # as `profiles show`
        ("Auth scheme", value("auth_scheme", settings.auth_scheme)),
        ("Config file", obj["config_file"]),
        ("Project file", obj["project_file"]),
        ("API", api_line),
    ]
    out.fields(obj, rows)
    if code == Exit.AUTH and not settings.token and not json:
        out.hint("run `valyent auth login`, set VALYENT_API_TOKEN, or use the sandbox: `valyent local start`")
    if code != Exit.OK:
        raise typer.Exit(code)


@app.command("token")
def token(ctx: typer.Context) -> None:
    """Print the token in use to stdout, for piping (`valyent auth token | docker login ... --password-stdin`).

    Example: TOKEN=$(valyent auth token)
    """
    settings = _app(ctx).settings
    if not settings.token:
        raise CliError(
            "no token: not logged in",
            Exit.AUTH,
            hint="run `valyent auth login`, or set VALYENT_API_TOKEN",
        )
    _app(ctx).output().text(settings.token)
