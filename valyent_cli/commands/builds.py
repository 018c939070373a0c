"""`valyent builds`: build container images from a directory, on Ravel or on the local sandbox."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from valyent_cli.cli.options import JsonOpt, QuietOpt

app = typer.Typer(
    name="builds",
    short_help="Build container images from a directory.",
    help="Build container images from a directory (its Dockerfile), then run them with `machines create --image`.\n\n"
    "Example: valyent builds create . --image myapp --tag v1 && valyent machines create --image myapp:v1",
    no_args_is_help=True,
)

BuildArg = Annotated[str, typer.Argument(metavar="BUILD", help="Build id.", show_default=False)]


def _columns():
    from valyent_cli.cli.humanize import ago
    from valyent_cli.cli.output import Column

    return [
        Column("ID", lambda b: b.get("id")),
        Column("IMAGE", lambda b: b.get("full_image")),
        Column("STATUS", _status),
        Column("DURATION", lambda b: f"{b['duration_ms'] / 1000:.1f}s" if b.get("duration_ms") else "-", drop=2),
        Column("CREATED", lambda b: ago(b.get("created_at")), drop=1),
    ]


def _status(b):
    """The status in words: a cancelled build, which the API reports as failed (Ravel has no cancelled status;
    its error says canceled), is "cancelled"."""
    status = b.get("status")
    if status == "failed" and "cancel" in str(b.get("error") or "").lower():
        return "cancelled"
    return status


def _rows(b):
    rows = [("ID", b.get("id")), ("Image", b.get("full_image")), ("Status", _status(b))]
    for label, key in (("Error", "error"), ("Digest", "digest"), ("Created", "created_at"),
                       ("Completed", "completed_at")):
        if b.get(key):
            rows.append((label, b.get(key)))
    if b.get("duration_ms"):
        rows.append(("Duration", f"{b['duration_ms'] / 1000:.1f}s"))
    return rows


def _context(directory: Path, dockerfile: str):
    """The build context: a gzipped tar of `directory` without what its .dockerignore excludes (docker's own rules,
    from docker-py), spooled to a temporary file."""
    from docker.utils.build import tar

    patterns = None
    ignore = directory / ".dockerignore"
    if ignore.is_file():
        lines = (line.strip() for line in ignore.read_text(errors="replace").splitlines())
        patterns = [line for line in lines if line and not line.startswith("#")]
    return tar(str(directory), exclude=patterns, dockerfile=(dockerfile, None), gzip=True)


@app.command("create")
def create(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The build context: a directory with a Dockerfile.", show_default=False)],
    image: Annotated[str, typer.Option("--image", "-i", metavar="NAME", help="Name of the image to build.", show_default=False)],
    tag: Annotated[str | None, typer.Option("--tag", "-t", metavar="TAG", help="Image tag (default latest).", show_default=False)] = None,
    registry: Annotated[str | None, typer.Option("--registry", metavar="REGISTRY", help="Registry to push to (Ravel requires one; the local sandbox keeps the image without).", show_default=False)] = None,
    dockerfile: Annotated[str, typer.Option("--dockerfile", "-f", metavar="PATH", help="The Dockerfile, relative to DIR.")] = "Dockerfile",
    build_arg: Annotated[list[str] | None, typer.Option("--build-arg", metavar="KEY=VALUE", help="A build argument (repeatable; the local sandbox's: Ravel's build API takes none).", show_default=False)] = None,
    target: Annotated[str | None, typer.Option("--target", metavar="STAGE", help="Build stage to stop at.", show_default=False)] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use the build cache.")] = False,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Return once the build started, without following its log.")] = False,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Build an image from DIR: the context is sent (honouring .dockerignore) and the build log followed live.

    Exits 1 when the build fails. The build goes to stdout (`-q`: its id; `--json`: the object). Ctrl-C while
    the log is followed cancels the build (--detach leaves it running).

    Example: valyent builds create . --image myapp --tag v1 --build-arg VERSION=1.2
    """
    from valyent_cli.cli.errors import CliError, UsageError

    args = {}
    for item in build_arg or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--build-arg expects KEY=VALUE, got {item!r}")
        args[key] = value
    if not directory.is_dir():
        raise UsageError(f"DIR {str(directory)!r} is not a directory")
    if not (directory / dockerfile).is_file():
        raise UsageError(f"no {dockerfile} in {directory} (use --dockerfile PATH, relative to DIR)")
    if not image.strip():
        raise UsageError("--image must not be empty")
    from valyent_cli.cli import validate as v

    v.image_name(image)
    if tag is not None:
        v.image_tag(tag)
    if registry is not None:
        v.registry(registry)
    app_ = ctx.obj
    out = app_.output(json=json, quiet=quiet)
    if not registry or args:  # Ravel requires a registry and has no build arguments (checked before the upload)
        from valyent_cli.cli.endpoint import is_sandbox

        if not is_sandbox(app_):
            if not registry:
                raise UsageError("--registry is required on this server (a Ravel pushes every build to a registry), "
                                 "e.g. --registry registry.example.com/team")
            raise UsageError("--build-arg: this server's build API takes no build arguments (Ravel has no such "
                             "parameter): give the ARG a default in the Dockerfile instead")
    context = _context(directory, dockerfile)
    size = context.seek(0, os.SEEK_END)
    context.seek(0)
    if not quiet:
        from valyent_cli.cli.humanize import human_size

        out.info(f"Sending the build context ({human_size(size)})...")
    with context:
        try:
            build = app_.connect().builds.create(context, image, tag=tag, registry=registry, dockerfile=dockerfile,
                                                 target=target, no_cache=no_cache, build_args=args)
        except KeyboardInterrupt:
            out.warn("interrupted before the server answered: the build may have started; look with "
                     "`valyent builds list` (and `valyent builds cancel ID`)")
            raise
    if not quiet:
        out.info(f"Build {build.get('id')} of {build.get('full_image')} started")
    if not detach:
        try:
            build = _follow(app_, out, build)
        except KeyboardInterrupt:
            _cancel_on_interrupt(app_, out, build)
            raise
    out.fields(build, _rows(build))
    if not detach and build.get("status") == "failed":
        raise CliError(f"build {build.get('id')} failed: {build.get('error') or 'see valyent builds logs'}")


def _cancel_on_interrupt(app_, out, build) -> None:
    """Ctrl-C while following a build stops it, as `docker build` does (else it would go on unseen)."""
    from valyent_cli.api import ValyentError

    try:
        app_.connect().builds.cancel(build["id"])
    except (ValyentError, KeyboardInterrupt):
        out.warn(f"build {build['id']} goes on: cancel it with `valyent builds cancel {build['id']}`")
        return
    out.info(f"Cancelled build {build['id']}")


def _follow(app_, out, build):
    """Print the build log live on stderr until the build ends; the build as it ended."""
    client = app_.connect()
    printed = 0
    for line in client.builds.iter_logs(build["id"], follow=True):
        out.build_log(line, to_stderr=True)
        printed += 1
    for line in _poll(out, client, build["id"], printed):
        out.build_log(line, to_stderr=True)
    return client.builds.get(build["id"])


def _poll(out, client, build_id, printed):
    """The lines past the first ``printed`` as they come, polling every second until the build ends: after a stream
    that ended early (a proxy, a restart, or a Ravel, which never passes `follow` on to its node)."""
    build = client.builds.get(build_id)
    if build.done:
        lines = client.builds.logs(build_id).splitlines()
        yield from lines[printed:]
        return
    out.info(f"Build {build_id} is {build.get('status')}: the log stream ended, polling it every second")
    while True:
        lines = client.builds.logs(build_id).splitlines()
        yield from lines[printed:]
        printed = max(printed, len(lines))
        if build.done:
            return
        time.sleep(1)
        status = build.get("status")
        build = client.builds.get(build_id)
        if build.get("status") != status and not build.done:
            out.info(f"Build {build_id} is {build.get('status')}")


def _resolve(app_, ref):
    """A build by id, or by a unique id prefix: Ravel answers an unknown id with a 500 (ravel/builds.go)."""
    from valyent_cli.api import NotFound, ServerError
    from valyent_cli.cli.errors import CliError
    from valyent_cli.cli.exits import Exit

    client = app_.connect()
    try:
        return client.builds.get(ref)
    except (NotFound, ServerError) as exc:
        if isinstance(exc, ServerError) and exc.status != 500:
            raise
    matches = [b for b in client.builds.list() if str(b.get("id", "")).startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    raise CliError(f"no build {ref!r}" if not matches else f"build id prefix {ref!r} is ambiguous",
                   Exit.NOT_FOUND if not matches else Exit.USAGE, hint="list them: valyent builds list")


@app.command("list")
def list_(ctx: typer.Context,
          limit: Annotated[int | None, typer.Option("--limit", metavar="N", help="At most N builds (server default 20).", show_default=False)] = None,
          json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """List the namespace's builds, newest first.

    Example: valyent builds list --limit 5
    """
    app_ = ctx.obj
    out = app_.output(json=json, quiet=quiet)
    out.table(app_.connect().builds.list(limit=limit), _columns(), empty="No builds.")


@app.command("show")
def show(ctx: typer.Context, build: BuildArg, json: JsonOpt = False) -> None:
    """Show a build: its image, status, error, digest and duration.

    Example: valyent builds show build_01jq...
    """
    app_ = ctx.obj
    b = _resolve(app_, build)
    app_.output(json=json).fields(b, _rows(b))


@app.command("logs")
def logs(ctx: typer.Context, build: BuildArg,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the build ends.")] = False) -> None:
    """Print a build's log (stdout); -f follows it live until the build ends.

    Example: valyent builds logs build_01jq... -f
    """
    app_ = ctx.obj
    out = app_.output()
    printed = 0
    for line in app_.connect().builds.iter_logs(build, follow=follow):
        out.build_log(line, to_stderr=False, flush=follow)
        printed += 1
    if follow:  # until the build ends, whatever the stream did
        for line in _poll(out, app_.connect(), build, printed):
            out.build_log(line, to_stderr=False)


@app.command("cancel")
def cancel(ctx: typer.Context, build: BuildArg) -> None:
    """Cancel a build that has not ended. A build that has ended is left as it is, with a note (exit 0).

    Example: valyent builds cancel build_01jq...
    """
    from valyent_cli.api import ApiError, NotFound, ValyentError

    app_ = ctx.obj
    out = app_.output()
    build = str(_resolve(app_, build)["id"])  # an unknown id is a 500 on Ravel (ravel/server/endpoints/builds.go)
    client = app_.connect()
    try:
        client.builds.cancel(build)
    except NotFound:
        raise
    except ApiError as exc:  # already ended (a second cancel): nothing to do, as a second stop
        try:
            current = client.builds.get(build)
        except ValyentError:
            raise exc from None
        if not current.done:
            raise
        out.info(f"Build {build} has already ended ({_status(current)}): nothing to cancel")
        return
    out.done(f"Cancelled build {build}")
