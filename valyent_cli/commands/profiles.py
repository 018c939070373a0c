"""`valyent profiles`: the profiles of config.toml (one per account or endpoint), and which one is active."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from valyent_cli import config
from valyent_cli.cli import complete
from valyent_cli.cli.errors import CliError, UsageError
from valyent_cli.cli.exits import Exit

if TYPE_CHECKING:
    from valyent_cli.cli.context import AppContext

app = typer.Typer(name="profiles", help="Manage configuration profiles.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (tokens are never included).")]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", "-p", metavar="PROFILE", help="Profile to change (default: the one in use).", autocompletion=complete.profiles)
]


def _app(ctx: typer.Context) -> AppContext:
    return ctx.obj


def _checked(flag: str, key: str, value: Any) -> Any:
    """Validate a flag's value as the profile key it sets; a bad one is a usage error naming the flag."""
    if value is None:
        return None
    try:
        return config.check_profile_value(key, value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{flag}'") from None


def _target(ctx: typer.Context, name: str | None) -> str:
    """The profile a command changes: its own --profile, else the global one, $VALYENT_PROFILE or the active."""
    chosen, _ = config.selected_profile(name or _app(ctx).profile)
    if chosen is None:
        raise UsageError("no profile in use: name one with --profile, or pick one with `valyent profiles use NAME`")
    return chosen


def _public(name: str, table: dict[str, Any], active: str | None) -> dict[str, Any]:
    """A profile as shown: no token, only whether one is stored. Unknown keys are left out (they may be private)."""
    shown: dict[str, Any] = {"name": name, "active": name == active}
    shown.update({k: table[k] for k in config.PROFILE_KEYS if k in table and k != "token"})
    shown["has_token"] = bool(table.get("token"))
    return shown


@app.command("list")
def list_(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List the profiles; the active one is marked with *.

    Example: valyent profiles list --json
    """
    from valyent_cli.cli.output import Column

    out = _app(ctx).output(json=json)
    active, profiles = config.list_profiles()
    rows = [_public(name, table, active) for name, table in sorted(profiles.items())]
    columns = [
        Column(" ", lambda r: "*" if r["active"] else " "),
        Column("name", lambda r: r["name"]),
        Column("endpoint", lambda r: r.get("endpoint", config.DEFAULT_ENDPOINT)),
        Column("namespace", lambda r: r.get("namespace")),
        Column("fleet", lambda r: r.get("fleet")),
        Column("token", lambda r: "yes" if r["has_token"] else "no"),
    ]
    out.table(
        rows,
        columns,
        id_key="name",
        empty="No profiles yet: `valyent auth login` or `valyent profiles create NAME` makes one.",
    )


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="Profile to show (default: the one in use).", autocompletion=complete.profiles)] = None,
    json: JsonOpt = False,
) -> None:
    """Show one profile, its token masked.

    Example: valyent profiles show work
    """
    out = _app(ctx).output(json=json)
    target = _target(ctx, name)
    table = config.get_profile(target)
    active, _ = config.list_profiles()
    obj: dict[str, Any] = {"name": target, "active": target == active}
    for key, value in table.items():
        obj[key] = config.mask_token(value) if key == "token" and isinstance(value, str) else value
    rows: list[tuple[str, Any]] = [("Name", target), ("Active", target == active)]
    rows.append(("Endpoint", table.get("endpoint", f"{config.DEFAULT_ENDPOINT} (default)")))
    rows.append(("Token", obj.get("token") or "none (run `valyent auth login`)"))
    for key in config.PROFILE_KEYS:
        if key not in ("endpoint", "token") and key in table:
            rows.append((key.replace("_", " ").capitalize(), table[key]))
    out.fields(obj, rows)


def _read_token_stdin() -> str:
    try:
        return config.check_token(sys.stdin.read())
    except ValueError as exc:
        raise UsageError(f"--token-stdin: {exc}") from None


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name of the new profile (letters, digits, '-', '_').")],
    endpoint: Annotated[str | None, typer.Option("--endpoint", metavar="URL", help="API base URL.")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", metavar="NAMESPACE", help="Namespace sent with every request.")] = None,
    fleet: Annotated[str | None, typer.Option("--fleet", metavar="FLEET", help="Default fleet (id or name).")] = None,
    region: Annotated[str | None, typer.Option("--region", metavar="REGION", help="Default region for new machines.")] = None,
    initd_endpoint: Annotated[
        str | None, typer.Option("--initd-endpoint", metavar="URL", help="URL template of a machine's agent, with {machine_id}.")
    ] = None,
    timeout: Annotated[str | None, typer.Option("--timeout", metavar="DURATION", help="Request timeout: seconds, or 30s, 2m.")] = None,
    cpu_kind: Annotated[str | None, typer.Option("--cpu-kind", metavar="KIND", help="Default CPU kind for new machines (one of the server's templates, e.g. eco).", autocompletion=complete.cpu_kinds)] = None,
    auth_scheme: Annotated[str | None, typer.Option("--auth-scheme", metavar="SCHEME", help="bearer (Authorization: Bearer TOKEN, the default) or raw (the header is the token itself).", autocompletion=complete.auth_schemes)] = None,
    ca_cert: Annotated[str | None, typer.Option("--ca-cert", metavar="FILE", help="PEM file of the CA that signed the server's certificate.")] = None,
    client_cert: Annotated[str | None, typer.Option("--client-cert", metavar="FILE", help="PEM client certificate, for servers that require one (mTLS).")] = None,
    client_key: Annotated[str | None, typer.Option("--client-key", metavar="FILE", help="PEM private key of the client certificate.")] = None,
    allow_http: Annotated[
        bool, typer.Option("--allow-http", help="Allow the token over plain http to a non-loopback host.")
    ] = False,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read a token from stdin (stored unchecked; `auth login` checks).")
    ] = False,
    use: Annotated[bool, typer.Option("--use", help="Make it the active profile.")] = False,
) -> None:
    """Create a profile. The first profile becomes the active one.

    Examples:

      valyent profiles create work --endpoint https://console.valyent.cloud/v1 --namespace acme --use

      valyent profiles create ravel --endpoint https://ravel.example:3000 --namespace demo --auth-scheme raw --ca-cert ca.pem --client-cert me.pem --client-key me.key
    """
    out = _app(ctx).output()
    try:
        config.check_profile_name(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'NAME'") from None
    values = {
        "endpoint": _checked("--endpoint", "endpoint", endpoint),
        "namespace": _checked("--namespace", "namespace", namespace),
        "fleet": _checked("--fleet", "fleet", fleet),
        "region": _checked("--region", "region", region),
        "initd_endpoint": _checked("--initd-endpoint", "initd_endpoint", initd_endpoint),
        "timeout": _checked("--timeout", "timeout", timeout),
        "cpu_kind": _checked("--cpu-kind", "cpu_kind", cpu_kind),
        "auth_scheme": _checked("--auth-scheme", "auth_scheme", auth_scheme),
        "ca_cert": _checked("--ca-cert", "ca_cert", ca_cert),
        "client_cert": _checked("--client-cert", "client_cert", client_cert),
        "client_key": _checked("--client-key", "client_key", client_key),
        "allow_http": True if allow_http else None,
        "token": _read_token_stdin() if token_stdin else None,
    }
    active = config.create_profile(name, values, activate=use)
    out.done(f"Created profile {name}" + (" (active)" if active else f"; use it with `valyent profiles use {name}`"))
    if active:
        _warn_env_profile(out, name)


@app.command("use")
def use(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME", help="Profile to make active.", autocompletion=complete.profiles)]) -> None:
    """Make a profile the active one.

    Example: valyent profiles use work
    """
    out = _app(ctx).output()
    config.use_profile(name)
    out.done(f"Now using profile {name}")
    _warn_env_profile(out, name)


def _warn_env_profile(out: Any, name: str) -> None:
    env = os.environ.get(config.ENV_PROFILE)
    if env and env != name:
        out.warn(f"{config.ENV_PROFILE}={env} is set and takes precedence over the active profile")


def _key(key: str, *, settable: bool) -> str:
    try:
        return config.check_key(key, settable=settable)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@app.command("set")
def set_(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="KEY", help=f"One of: {', '.join(config.SETTABLE_KEYS)}.",
                                       autocompletion=complete.choices(config.SETTABLE_KEYS))],
    value: Annotated[str, typer.Argument(metavar="VALUE", help="The new value.")],
    profile: ProfileOpt = None,
) -> None:
    """Set one key of a profile (the one in use unless --profile).

    Example: valyent profiles set fleet web
    """
    out = _app(ctx).output()
    _key(key, settable=True)
    try:
        typed = config.check_profile_value(key, value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    target = _target(ctx, profile)
    config.set_profile_value(target, key, typed)
    shown = str(typed).lower() if isinstance(typed, bool) else typed
    out.done(f"Set {key} = {shown} in profile {target}")


@app.command("unset")
def unset(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="KEY", help=f"One of: {', '.join(config.PROFILE_KEYS)}.",
                                       autocompletion=complete.choices(config.PROFILE_KEYS))],
    profile: ProfileOpt = None,
) -> None:
    """Remove one key from a profile, so that its default applies.

    Example: valyent profiles unset region
    """
    out = _app(ctx).output()
    _key(key, settable=False)
    target = _target(ctx, profile)
    if config.unset_profile_value(target, key):
        out.done(f"Removed {key} from profile {target}")
    else:
        out.info(f"Profile {target} has no {key}: nothing to remove")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Profile to delete.", autocompletion=complete.profiles)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a profile (and the token it holds).

    Example: valyent profiles delete old --yes
    """
    out = _app(ctx).output()
    config.get_profile(name)  # an unknown name is an error before any question
    if not yes:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise UsageError("refusing to delete without --yes when not on a terminal")
        if not typer.confirm(f"Delete profile {name} and the token it holds?", default=False, err=True):
            raise CliError("not deleted", Exit.ERROR)
    was_active = config.delete_profile(name)
    out.done(f"Deleted profile {name}")
    if was_active:
        out.info("No profile is active now: pick one with `valyent profiles use NAME`")


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[
        str | None, typer.Option("--path", metavar="FILE", help="The Go CLI's config file (default: ~/.valyent/config.yaml).")
    ] = None,
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="Name of the new profile.")] = "default",
    use: Annotated[bool, typer.Option("--use", help="Make it the active profile.")] = False,
) -> None:
    """Import the archived Go CLI's configuration (its token and namespace) as a profile.

    Example: valyent profiles import --use
    """
    from pathlib import Path

    out = _app(ctx).output()
    try:
        config.check_profile_name(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--name'") from None
    source = Path(path).expanduser() if path else config.go_config_path()
    created, active = config.import_go_config(source, name, activate=use)
    out.done(f"Imported {source} as profile {created}" + (" (active)" if active else ""))
    out.hint(f"check the token with `valyent --profile {created} auth status`")
