"""`valyent gateways`: public network access to a port of a fleet's machines."""

from __future__ import annotations

from typing import Annotated

import typer

from valyent_cli.cli import complete, resolve
from valyent_cli.cli.options import FleetOpt, JsonOpt, QuietOpt, YesOpt

app = typer.Typer(
    name="gateways",
    short_help="Expose a port of a fleet's machines.",
    help="Manage gateways (public access to a port of a fleet's machines).\n\n"
    "Example: valyent gateways create --name web --port 8080",
    no_args_is_help=True,
)

GatewayArg = Annotated[str, typer.Argument(metavar="GATEWAY", help="Gateway id or name.", show_default=False, autocompletion=complete.gateways)]


def _columns(gateways=(), fleet_label: str | None = None):
    from valyent_cli.cli.output import Column

    columns = [
        Column("ID", lambda g: g.get("id")),
        Column("NAME", lambda g: g.get("name")),
        Column("PROTOCOL", lambda g: g.get("protocol"), drop=2),
        Column("TARGET PORT", lambda g: g.get("target_port"), justify="right", drop=1),
        Column("FLEET", lambda g: fleet_label or g.get("fleet_id"), drop=3),
    ]
    if any(g.get("url") for g in gateways):  # the local sandbox's gateways answer on a loopback URL
        columns.append(Column("URL", lambda g: g.get("url") or "-"))
    return columns


def _setup(ctx: typer.Context, fleet: str | None, **kwargs):
    app_ = ctx.obj
    return app_, app_.output(**kwargs), resolve.fleet(app_, fleet)


@app.command("list")
def list_(ctx: typer.Context, fleet: FleetOpt = None, json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """List a fleet's gateways.

    Example: valyent gateways list --fleet web
    """
    app_, out, fleet_ref = _setup(ctx, fleet, json=json, quiet=quiet)
    items = app_.connect().gateways.list(fleet_ref)
    label = resolve.fleet_label(app_, fleet_ref, with_id=False) if items and not (json or quiet) else None
    out.table(items, _columns(items, label), empty=f"No gateways in fleet {fleet_ref}.")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", "-n", metavar="NAME", help="Gateway name (letters, digits and '-'); without it the server names it.", show_default=False)] = None,
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Target port on the machines (1-65535).", show_default=False)] = ...,  # type: ignore[assignment]
    fleet: FleetOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Create a gateway to a port of the fleet's machines, and print it (`-q`: its id).

    Examples:

      valyent gateways create --name web --port 8080

      valyent gateways create --port 8080 -q      # the server picks the name
    """
    from valyent_cli.cli import validate as v

    if name is not None:
        v.fleet_name(name, "--name")
    v.positive_int(port, "--port", minimum=1, maximum=65535)
    app_, out, fleet_ref = _setup(ctx, fleet, json=json, quiet=quiet)
    gateway = app_.connect().gateways.create(fleet_ref, name=name, target_port=port)
    if not (json or quiet):
        url = f": {gateway['url']}" if gateway.get("url") else ""
        out.done(f"Created gateway {gateway.get('name')} ({gateway.get('id')}) to port {gateway.get('target_port')}{url}")
    _show(out, gateway)


@app.command("show")
def show(ctx: typer.Context, gateway: GatewayArg, fleet: FleetOpt = None, json: JsonOpt = False) -> None:
    """Show a gateway.

    Example: valyent gateways show web
    """
    app_, out, fleet_ref = _setup(ctx, fleet, json=json)
    _show(out, resolve.gateway(app_, fleet_ref, gateway))


def _show(out, g) -> None:
    rows = [("ID", g.get("id")), ("Name", g.get("name")), ("Protocol", g.get("protocol")),
            ("Target port", g.get("target_port")), ("Fleet", g.get("fleet_id")), ("Namespace", g.get("namespace"))]
    if g.get("url"):
        rows.append(("URL", g.get("url")))
    out.fields(g, rows)


@app.command("delete")
def delete(ctx: typer.Context, gateways: Annotated[list[str], typer.Argument(metavar="GATEWAY", help="Gateway ids or names.", autocompletion=complete.gateways)],
           yes: YesOpt = False, fleet: FleetOpt = None) -> None:
    """Delete gateways.

    Example: valyent gateways delete web --yes
    """

    resolve.require_yes(yes, "delete gateways")

    app_, out, fleet_ref = _setup(ctx, fleet)
    found = [resolve.gateway(app_, fleet_ref, g) for g in gateways]
    resolve.confirm(out, f"Delete gateway{'s' if len(found) > 1 else ''} {', '.join(str(g.get('name')) for g in found)}?", yes)
    for g in found:
        app_.connect().gateways.delete(fleet_ref, str(g.get("id")))
        out.done(f"Deleted gateway {g.get('name')} ({g.get('id')})")
