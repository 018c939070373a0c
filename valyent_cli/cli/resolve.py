"""From what the user typed to what the API needs: the fleet in use, machines by id or unique id prefix."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from valyent_cli.cli import sanitize
from valyent_cli.cli.errors import CliError, UsageError
from valyent_cli.cli.exits import Exit

if TYPE_CHECKING:
    from valyent_cli.api import Gateway, Machine
    from valyent_cli.cli.context import AppContext
    from valyent_cli.cli.output import Output

NO_FLEET = (
    "no fleet selected: pass --fleet NAME, set VALYENT_FLEET, put `fleet = \"NAME\"` in valyent.toml, "
    "or run `valyent fleets use NAME`"
)


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def fleet(app: AppContext, flag: str | None) -> str:
    """The fleet to act on: --fleet > VALYENT_FLEET > valyent.toml > the profile's fleet > a picker on a terminal."""
    if flag is not None:
        from valyent_cli.cli.validate import name

        if not name(flag, "--fleet").strip():
            raise UsageError("--fleet must not be empty")
        return flag.strip()
    if app.settings.fleet:
        from valyent_cli.cli import errors

        errors.fleet_origin = _origin(app, app.settings.fleet)
        return app.settings.fleet
    if not app.settings.token:
        app.connect()  # with nothing configured, "not logged in" (and how to start) comes first
    if not interactive():
        raise UsageError(NO_FLEET)
    fleets = app.connect().fleets.list()
    if not fleets:
        raise UsageError("there is no fleet yet: create one with `valyent fleets create NAME`")
    from valyent_cli.cli.picker import choose

    out = app.output()
    chosen = choose(out, heading="No fleet is selected; the fleets:", label="Fleet", noun="fleet",
                    rows=[(str(f.get("id")), (str(f.get("name") or f.get("id")), str(f.get("id")))) for f in fleets])
    name_of = {str(f.get("id")): str(f.get("name") or f.get("id")) for f in fleets}
    out.note(sanitize.block(f"Hint: `valyent fleets use {name_of.get(chosen, chosen)}` makes it the default."))
    return chosen


def fleet_label(app: AppContext, fleet_ref: str, fleet_id: object = None, *, with_id: bool = True) -> str:
    """A fleet as people know it, for tables and `show`: `NAME (ID)`, or `NAME` (its id if the name cannot be read)."""
    from valyent_cli.api import ValyentError

    fleet_id = str(fleet_id or fleet_ref)
    try:
        found = app.connect().fleets.get(fleet_ref)
    except ValyentError:
        return fleet_id
    name, ident = found.get("name"), found.get("id") or fleet_id
    if not name or name == ident:
        return str(ident)
    return f"{name} ({ident})" if with_id else str(name)


def pick(app: AppContext, kind: str, fleet_flag: str | None = None) -> str | None:
    """On a terminal, a numbered list of the fleet's live machines (or of the fleets) on stderr and a prompt for one;
    its id (a fleet's name), or None when there is nothing to pick from."""
    from valyent_cli.cli.picker import choose, live_first

    current = None
    if kind == "fleet":
        items = app.connect().fleets.list()
        rows = [(str(f.get("name") or f.get("id")), (str(f.get("name") or f.get("id")), str(f.get("id"))))
                for f in items]
        selected = app.settings.fleet
        current = next((value for (value, cells) in rows if selected in cells), None)
        heading = "Fleets" + (" (* the one in use; Enter keeps it):" if current else ":")
    else:
        fleet_ref = fleet(app, fleet_flag)
        items = [m for m in app.connect().machines.list(fleet_ref) if m.get("state") != "destroyed"]
        items.sort(key=lambda m: live_first(m.get("state")))  # stable: the server's order within a state
        rows = [(str(m.get("id")), (str(m.get("id")), str(m.get("state")), str((m.get("config") or {}).get("image") or "")))
                for m in items]
        heading = f"Machines of fleet {fleet_ref}, live first:"
    if not rows:
        return None
    return choose(app.output(), heading=heading, label=kind.capitalize(), noun=kind, rows=rows, current=current)


def _origin(app: AppContext, name: str) -> tuple[str, str]:
    """Where the fleet in use came from, and how to change it: for a "fleet not found" error."""
    settings = app.settings
    source = settings.sources.get("fleet")
    if source == "environment":
        return name, "VALYENT_FLEET sets it: change or unset it, or pass --fleet"
    if source == "project file":
        where = settings.project_path or "valyent.toml"
        return name, f"{where} sets it (`fleet = ...`): change it there, or pass --fleet"
    from valyent_cli.groups import RESOURCES

    return name, (f"it is profile {settings.profile}'s default fleet: choose another with `valyent fleets use NAME` "
                  f"(`valyent {RESOURCES['fleet']['list']}` shows them), or pass --fleet")


def machine(app: AppContext, fleet_ref: str, ref: str, *, include_destroyed: bool = True,
            id_only: bool = False, needs: str = "") -> Machine:
    """A machine by its id or a unique prefix of it; an ambiguous prefix lists the candidates (exit 2).

    ``id_only``: the command needs nothing but the id (exec, logs, start, stop, wait, delete, events...). When the
    server cannot read machines (a 5xx: a Ravel with the no-op cluster state, core/cluster/noop.go, answers every
    machine read with a 500 and every list with `null`), it goes on with ``ref`` as the full id, with one note;
    the machine object then holds nothing but ``id`` (no ``state``). Otherwise such a failure says why the command
    needs the read (``needs``)."""
    from valyent_cli.api import ApiError, Machine, NotFound

    from valyent_cli.cli.validate import name

    ref = name(ref, "MACHINE").strip()
    if not ref:
        raise UsageError("the machine id must not be empty")
    client = app.connect()
    try:
        return client.machines.get(fleet_ref, ref)
    except NotFound:
        pass
    except ApiError as exc:
        if exc.status < 500:
            raise
        if not id_only:
            raise CliError(f"the server cannot read machine {ref} (HTTP {exc.status}: {exc.message})"
                           + (f": {needs}" if needs else ""), Exit.ERROR) from None
        app.output().note(
            f"Note: the server cannot read machine {ref} (HTTP {exc.status}; a Ravel with the no-op cluster state "
            "answers every machine read so): going on with it as the machine's full id")
        return Machine({"id": ref}, client, fleet_ref)
    # Live machines first: ids are time-ordered, so the machines of one minute share their first ~8 characters,
    # and the destroyed ones of the same minute must not make a live machine's prefix ambiguous.
    candidates = [m for m in client.machines.list(fleet_ref, destroyed=include_destroyed)
                  if str(m.get("id", "")).startswith(ref)]
    matches = [m for m in candidates if m.get("state") != "destroyed"] or candidates
    if len(matches) == 1:
        return matches[0]
    if not matches:
        from valyent_cli.groups import RESOURCES

        raise CliError(f"no machine {ref!r} in fleet {fleet_ref!r}", Exit.NOT_FOUND,
                       hint=f"list them with `valyent {RESOURCES['machine']['list']}`")
    listing = "\n".join(f"  {m.get('id')}  {m.get('state')}" for m in matches[:20])
    raise UsageError(f"machine id prefix {ref!r} is ambiguous; it matches:\n{listing}\n"
                     "(ids made the same minute share their first characters: type more of the id)")


def gateway(app: AppContext, fleet_ref: str, ref: str) -> Gateway:
    """A gateway by id (`gw_...`), else by name or id prefix through the list, as machine prefixes are: Ravel's
    lookup by name is a 500 (a malformed query in ravel/state/db/gateways.go), so a name never goes to it."""
    from valyent_cli.api import NotFound

    if ref.startswith("gw_"):
        try:
            return app.connect().gateways.get(fleet_ref, ref)
        except NotFound:
            pass
    for item in app.connect().gateways.list(fleet_ref):
        if item.get("name") == ref or str(item.get("id", "")).startswith(ref):
            return item
    from valyent_cli.groups import RESOURCES

    raise CliError(f"no gateway {ref!r} in fleet {fleet_ref!r}", Exit.NOT_FOUND,
                   hint=f"list them: valyent {RESOURCES['gateway']['list']}")


def require_yes(yes: bool, action: str) -> None:
    """Fail before any request when a destructive command has neither --yes nor a terminal to ask on."""
    if not yes and not interactive():
        raise UsageError(f"refusing to {action} without --yes when not on a terminal")


def confirm(out: Output, question: str, yes: bool) -> None:
    """Go on only with --yes or a yes typed on a terminal; never prompt without one."""
    if yes:
        return
    if not interactive():
        raise UsageError(f"{question.rstrip('?')}: refusing without --yes when not on a terminal")
    import typer

    if not typer.confirm(question, default=False, err=True):
        out.info("Cancelled: nothing was changed.")
        raise typer.Exit(Exit.ERROR)
