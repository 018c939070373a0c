"""`valyent fleets`: groups of machines."""

# No `from __future__ import annotations` here: typer reads the annotations of the commands it builds on every
# run, and each string annotation costs a compile() (~50 µs); real ones cost nothing then (issue 16).
from typing import Annotated

import typer

from valyent_cli.cli import complete
from valyent_cli.cli.options import JsonOpt, QuietOpt, YesOpt

app = typer.Typer(
    name="fleets",
    help="Manage fleets (groups of machines).\n\nExample: valyent fleets create web && valyent fleets use web",
    no_args_is_help=True,
)

FleetArg = Annotated[str, typer.Argument(metavar="FLEET", help="Fleet id or name.", show_default=False, autocompletion=complete.fleets)]


def _columns():
    from valyent_cli.cli.output import Column, state_style
    from valyent_cli.cli.humanize import ago

    return [
        Column("ID", lambda f: f.get("id")),
        Column("NAME", lambda f: f.get("name")),
        Column("STATUS", lambda f: f.get("status"), style=state_style),
        Column("CREATED", lambda f: ago(f.get("created_at"))),
    ]


@app.command("list")
def list_(
    ctx: typer.Context,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", metavar="KEY=VALUE", help="Only fleets with this label (repeatable: all of them).", show_default=False)] = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List fleets.

    Examples:

      valyent fleets list --json | jq -r '.[].name'

      valyent fleets list --label team=payments
    """
    wanted: dict[str, str] = {}
    if label:  # the checks' module only when there is something to check
        from valyent_cli.cli.metadata import pairs

        wanted = pairs(label, "--label")
    app_ = ctx.obj
    out = app_.output(json=json, quiet=quiet)
    fleets = app_.connect().fleets.list(labels=wanted or None)
    out.table(fleets, _columns(), empty="No fleets. Create one: valyent fleets create NAME")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Fleet name: 1-63 letters, digits and '-', not starting or ending with '-'.")],
    use: Annotated[bool, typer.Option("--use", help="Also make it the profile's default fleet.")] = False,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", metavar="KEY=VALUE", help="Label (repeatable; at most 64, key <= 63, value <= 255 characters).", show_default=False)] = None,
    annotation: Annotated[list[str] | None, typer.Option("--annotation", metavar="KEY=VALUE", help="Annotation (repeatable; at most 32).", show_default=False)] = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Create a fleet, and print it (`-q`: its id).

    Examples:

      valyent fleets create my-fleet --use

      valyent fleets create payments --label team=payments --annotation owner=ops@example.com
    """
    from valyent_cli.cli.metadata import pairs
    from valyent_cli.cli.validate import fleet_name

    fleet_name(name, "NAME")
    labels = pairs(label, "--label")
    annotations = pairs(annotation, "--annotation", "annotation")
    app_ = ctx.obj
    out = app_.output(json=json, quiet=quiet)
    fleet = app_.connect().fleets.create(name, labels=labels or None, annotations=annotations or None)
    if not (json or quiet):
        out.done(f"Created fleet {fleet.get('name')} ({fleet.get('id')})")
    if use:
        _use(app_, out, str(fleet.get("name") or name))
    _show(out, fleet)


@app.command("show")
def show(ctx: typer.Context, fleet: Annotated[str | None, typer.Argument(
        metavar="FLEET", help="Fleet id or name (default: the fleet in use: VALYENT_FLEET, valyent.toml, the profile's).",
        show_default=False, autocompletion=complete.fleets)] = None, json: JsonOpt = False) -> None:
    """Show a fleet: the one named, else the one in use.

    Example: valyent fleets show my-fleet
    """
    from valyent_cli.cli import resolve

    app_ = ctx.obj
    out = app_.output(json=json)
    _show(out, app_.connect().fleets.get(fleet if fleet is not None else resolve.fleet(app_, None)))


def _show(out, item) -> None:
    from valyent_cli.cli.metadata import show as show_pairs
    from valyent_cli.cli.output import state_style
    from valyent_cli.cli.humanize import clock

    out.fields(
        item,
        [
            ("ID", item.get("id")),
            ("Name", item.get("name")),
            ("Namespace", item.get("namespace")),
            ("Status", item.get("status")),
            ("Labels", show_pairs((item.get("metadata") or {}).get("labels"))),
            ("Annotations", show_pairs((item.get("metadata") or {}).get("annotations"))),
            ("Created", clock(item.get("created_at"))),
        ],
        styles={"Status": state_style},
    )


@app.command("delete")
def delete(ctx: typer.Context, fleets: Annotated[list[str], typer.Argument(metavar="FLEET", help="Fleet ids or names.", autocompletion=complete.fleets)], yes: YesOpt = False) -> None:
    """Delete fleets (they must have no machines left).

    Example: valyent fleets delete my-fleet --yes
    """
    from valyent_cli.cli.resolve import confirm, require_yes

    require_yes(yes, "delete fleets")

    app_ = ctx.obj
    out = app_.output()
    confirm(out, f"Delete fleet{'s' if len(fleets) > 1 else ''} {', '.join(fleets)}?", yes)
    settings = app_.settings
    saved = settings.fleet if settings.profile and settings.sources.get("fleet") == "profile" else None
    if saved and settings.sources.get("namespace") not in ("profile", "default", None):
        # The profile's fleet lives in the profile's namespace: a fleet of that name elsewhere is another fleet.
        from valyent_cli import config

        own = (config.list_profiles()[1].get(str(settings.profile)) or {}).get("namespace")
        if (own or None) != (settings.namespace or None):
            saved = None
    for fleet in fleets:
        known = {fleet}
        if saved:
            from valyent_cli.api import ValyentError

            try:
                item = app_.connect().fleets.get(fleet)
                known |= {str(item.get("id")), str(item.get("name"))}
            except ValyentError:
                pass  # the delete says what is wrong
        app_.connect().fleets.delete(fleet)
        out.done(f"Deleted fleet {fleet}")
        if saved and saved in known:
            # The profile's default fleet is gone: forget it, rather than fail every later command with "not found".
            from valyent_cli.config import unset_profile_value

            unset_profile_value(str(settings.profile), "fleet")
            out.info(f"Profile {settings.profile} has no default fleet now: choose one with `valyent fleets use NAME`")
            saved = None


@app.command("label")
def label(
    ctx: typer.Context,
    fleet: FleetArg,
    changes: Annotated[list[str], typer.Argument(metavar="KEY=VALUE|KEY-", help="Labels to set (KEY=VALUE) or remove (KEY-).", show_default=False)],
    json: JsonOpt = False,
) -> None:
    """Set or remove a fleet's labels (kubectl's syntax), keeping the others.

    Example: valyent fleets label payments team=billing tier-
    """
    from valyent_cli.cli import metadata as meta

    to_set, to_remove = meta.edits(changes)
    app_ = ctx.obj
    out = app_.output(json=json)
    item = app_.connect().fleets.get(fleet)
    updated = app_.connect().fleets.update_metadata(str(item.get("id") or fleet), meta.merged(item.get("metadata"), to_set, to_remove))
    if json:
        out.data(updated)
        return
    out.done(f"Labels of fleet {item.get('name') or fleet}: {meta.show((updated.get('metadata') or {}).get('labels')) or 'none'}")


@app.command("use")
def use(ctx: typer.Context, fleet: FleetArg) -> None:
    """Make a fleet the default of the active profile.

    Example: valyent fleets use my-fleet
    """
    app_ = ctx.obj
    out = app_.output()
    item = app_.connect().fleets.get(fleet)
    _use(app_, out, str(item.get("name") or fleet))


def _use(app_, out, name: str) -> None:
    from valyent_cli.cli.errors import UsageError
    from valyent_cli.config import set_profile_value

    profile = app_.settings.profile
    if not profile:
        raise UsageError("no profile to save the fleet in: create one with `valyent profiles create NAME --use`")
    set_profile_value(profile, "fleet", name)
    out.done(f"Fleet {name} is now the default of profile {profile}")
    if app_.settings.sources.get("fleet") in ("environment", "project file"):
        out.warn(f"the {app_.settings.sources['fleet']} still sets the fleet and takes precedence")
