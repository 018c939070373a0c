"""What `deploy`, `rollback`, `releases` and `status` share: the app's spec from valyent.toml and the flags, the
rollout with its progress (a live view on a terminal, one timestamped line per step otherwise), and how a failed
deploy is told."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from valyent_cli.apps.engine import Engine
    from valyent_cli.apps.plan import Step
    from valyent_cli.apps.spec import DeploySpec
    from valyent_cli.cli.context import AppContext
    from valyent_cli.cli.output import Output

AppOpt = Annotated[str | None, typer.Option(
    "--app", metavar="APP", show_default=False,
    help="The app (default: valyent.toml's [deploy] app, else the fleet's name).")]
StrategyOpt = Annotated[str | None, typer.Option(
    "--strategy", metavar="STRATEGY", show_default=False,
    help="rolling, bluegreen, canary or immediate (default: [deploy] strategy, else rolling).")]
CountOpt = Annotated[int | None, typer.Option(
    "--count", metavar="N", show_default=False, help="Machines of the app (default: [deploy] count, else 1).")]
MaxUnavailableOpt = Annotated[str | None, typer.Option(
    "--max-unavailable", metavar="N|PERCENT", show_default=False,
    help="Rolling: machines replaced at once, a number or a percentage of --count such as 33% (default 1).")]
WaitTimeoutOpt = Annotated[str | None, typer.Option(
    "--wait-timeout", metavar="DURATION", show_default=False,
    help="How long each new machine has to run (and be healthy, with a health check) (default 2m).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")]
DetachOpt = Annotated[bool, typer.Option(
    "--detach", "-d", help="Return once the release is recorded, with its number; the rollout goes on in the "
    "background (its log file is named).")]


def deploy_table(app_: AppContext) -> tuple[dict[str, Any], str]:
    settings = app_.settings
    source = str(settings.project_path) if settings.project_path else "valyent.toml"
    return dict(settings.project.get("deploy") or {}), source


def spec(app_: AppContext, fleet: str, *, app: str | None = None, count: int | None = None,
         strategy: str | None = None, max_unavailable: str | None = None,
         wait_timeout: str | None = None) -> DeploySpec:
    from valyent_cli.apps import spec as sp

    table, source = deploy_table(app_)
    if app is not None:
        table["app"] = sp.app_name(app, "--app")
    return sp.read(table, source=source, fleet=fleet, count=count, strategy=strategy, wait_timeout=wait_timeout,
                   max_unavailable_flag=max_unavailable)


def app_only(app_: AppContext, fleet: str, app: str | None) -> str:
    """The app's name alone (releases, status): --app > [deploy] app > the fleet's name."""
    from valyent_cli.apps import spec as sp

    table, source = deploy_table(app_)
    if app is not None:
        return sp.app_name(app, "--app")
    return sp.app_name(table.get("app", fleet), f"{source}: [deploy] app" if "app" in table else "--fleet")


class Progress:
    """The engine's reports, shown: a live table on a terminal, one timestamped line per report otherwise."""

    def __init__(self, out: Output, plan: Any) -> None:
        self.out = out
        self.plan = plan
        self.engine: Engine | None = None
        self.update: Any = None
        self.step: str = ""

    def attach(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, message: str, step: Step | None) -> None:
        if self.update is None:
            if not self.out.quiet:
                batch = f"[batch {step.batch}] " if step is not None and step.batch else ""
                self.out.step(f"{batch}{message}")
            return
        if step is not None:
            self.step = (f"Batch {step.batch}: " if step.batch else "") + step.describe()
        self.update(self.render(message))

    def render(self, message: str) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        plan = self.plan
        table = Table(box=None, pad_edge=False, header_style="bold")
        for header in ("", "MACHINE", "RELEASE", "STATE", "HEALTH", "GATEWAY"):
            table.add_column(header, no_wrap=True)
        for tracked in (self.engine.machines.values() if self.engine else []):
            release = str(plan.to_release) if tracked.role == "new" else str(
                next((m.release for m in plan.old if m.id == tracked.name), plan.from_release or "-"))
            # + a new machine, ✓ once it counts; - an old one; ↺ one of the old release made again by an undo
            mark = {"new": "✓" if tracked.counted else "+", "restore": "↺"}.get(tracked.role, "-")
            table.add_row(mark, tracked.id or tracked.name, release, tracked.state, tracked.health,
                          "on" if tracked.gateway else "off")
        title = Text(f"Deploying {plan.app}: release {plan.to_release} ({plan.strategy})", style="bold")
        return Group(title, Text(self.step), table, Text(message, style="dim"))


def run_rollout(app_: AppContext, out: Output, fleet: str, spec_: DeploySpec, payload: dict[str, Any], *,
                dry_run: bool, json: bool, rollback_of: int | None = None) -> None:
    """Plan, then (unless --dry-run) run the plan with progress; exit 1 with the failing machine's story."""
    from valyent_cli.apps import rollout
    from valyent_cli.apps.engine import DeployFailed
    from valyent_cli.cli.errors import CliError

    client = app_.connect()
    prepared = rollout.prepare(client, fleet, spec_, payload)
    plan = prepared.plan
    if dry_run:
        if json:
            out.data({**plan.to_dict(), "payload": payload})
        else:
            for line in plan.lines():
                out.text(line)
        return
    if prepared.unfinished and not app_detach_child():
        out.warn(f"release {prepared.unfinished[0]} of {plan.app} is recorded as still running: another deploy may "
                 "be going on (two at once would replace each other's machines), or one was killed before it "
                 "could record its end")
    if spec_.strategy == "immediate" and plan.old:
        out.warn("the immediate strategy replaces every machine at once without waiting: requests can fail "
                 "meanwhile")
    from valyent_cli.commands import app_detach

    progress = Progress(out, plan)
    detached = app_detach.is_child()
    live = out.stderr_tty and not out.quiet and not detached

    def started(engine: Engine) -> None:
        progress.attach(engine)
        if detached:
            app_detach.announce(out, prepared.releases.get(plan.to_release) or {"release": plan.to_release})

    try:
        if live:
            with out.live() as update:
                progress.update = update
                record = rollout.execute(client, fleet, prepared, payload, spec_, report=progress,
                                         rollback_of=rollback_of, on_engine=started)
        else:
            record = rollout.execute(client, fleet, prepared, payload, spec_, report=progress,
                                     rollback_of=rollback_of, on_engine=started)
    except DeployFailed as exc:
        for line in failure_lines(exc):
            out.note(line)
        raise CliError(f"release {plan.to_release} of {plan.app} failed: {exc.message}; its new machines were "
                       "removed and the previous release keeps serving",
                       hint=f"see `valyent releases --app {plan.app} --fleet {fleet}`") from None
    except KeyboardInterrupt:
        out.warn(f"interrupted: release {plan.to_release} was undone (recorded as failed)")
        raise
    what = f"rolled back to release {rollback_of} as release {plan.to_release}" if rollback_of else (
        f"release {plan.to_release}")
    out.done(f"Deployed {plan.app} {what}: {plan.count} machine{'s' if plan.count != 1 else ''} of "
             f"{record.get('image')}")
    if json and not detached:
        out.data(record)


def app_detach_child() -> bool:
    from valyent_cli.commands import app_detach

    return app_detach.is_child()


def failure_lines(exc: Any) -> list[str]:
    from valyent_cli.cli import sanitize

    lines = []
    if exc.logs:
        lines.append(f"Last log lines of {exc.machine}:")
        lines += [f"  {sanitize.line(x)}" for x in exc.logs]
    if exc.health:
        lines.append(f"Last health check of {exc.machine}: {sanitize.line(exc.health)}")
    return lines
