"""`valyent status`: the app now: its current release, its machines by release with state and health, its gateways."""

from __future__ import annotations

import typer

from valyent_cli.cli.options import FleetOpt, JsonOpt
from valyent_cli.commands.app_views import AppOpt

HELP = """Show the app: its current release (the newest that succeeded), its machines by release with their state,
health and gateway, and the fleet's gateways (with their URL where the server gives one, as the sandbox does).
--json prints {app, fleet, release, machines, gateways} with the machines and gateways as the API returns them.

Examples:

  valyent status

  valyent status --json | jq '.machines | length'
"""

app = typer.Typer(name="status", short_help="Show the app's release, machines and gateways.", help=HELP,
                  invoke_without_command=True, no_args_is_help=False, subcommand_metavar="")


@app.callback()
def status(ctx: typer.Context, app_name: AppOpt = None, fleet: FleetOpt = None, json: JsonOpt = False) -> None:
    from valyent_cli.apps import releases as rel
    from valyent_cli.apps import rollout
    from valyent_cli.cli import resolve
    from valyent_cli.cli.output import Column, state_style
    from valyent_cli.commands import app_views

    app_ = ctx.obj
    out = app_.output(json=json)
    fleet_ref = resolve.fleet(app_, fleet)
    name = app_views.app_only(app_, fleet_ref, app_name)
    client = app_.connect()
    records = rel.Releases(client, fleet_ref, name).list()
    current = next((r for r in records if r.get("status") == rel.SUCCEEDED), None)
    machines = sorted(rollout.app_machines(client, fleet_ref, name),
                      key=lambda m: (-(rollout.release_of(m) or 0), str(m.get("id"))))
    gateways = list(client.gateways.list(fleet_ref))
    if json:
        out.data({"app": name, "fleet": fleet_ref, "release": current, "machines": machines, "gateways": gateways})
        return
    if current is None:
        out.fields(None, [("App", name), ("Fleet", fleet_ref), ("Release", "none succeeded yet")])
    else:
        out.fields(None, [("App", name), ("Fleet", fleet_ref),
                          ("Release", f"{current['release']} ({current.get('finished_at') or current.get('created_at')})"),
                          ("Image", current.get("image")), ("Strategy", current.get("strategy"))])
    if records and records[0] is not current:
        latest = records[0]
        state = "is still running (or was cut short)" if latest.get("status") == "running" else latest.get("status")
        out.warn(f"the newest release, {latest['release']}, {state}"
                 + (f": {latest['error']}" if latest.get("error") else ""))
    out.text()
    columns = [
        Column("MACHINE", lambda m: m.get("id")),
        Column("RELEASE", lambda m: rollout.release_of(m)),
        Column("STATE", lambda m: m.get("state"), style=state_style),
        Column("HEALTH", lambda m: m.get("health") or "-", style=state_style),
        Column("GATEWAY", lambda m: "on" if m.get("gateway_enabled") else "off"),
        Column("REGION", lambda m: m.get("region")),
    ]
    out.table(machines, columns, empty=f"No machine of app {name} in fleet {fleet_ref}.")
    if gateways:
        out.text()
        out.table(gateways, [Column("GATEWAY", lambda g: g.get("name")),
                             Column("PORT", lambda g: g.get("target_port")),
                             Column("URL", lambda g: g.get("url") or "-")])
