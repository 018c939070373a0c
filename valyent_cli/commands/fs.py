"""`valyent fs`: a machine's files, on its initd host. Reads and writes are streamed, so size does not matter, and
bytes are never decoded, so binary files come through intact."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from valyent_cli.cli import complete, resolve
from valyent_cli.cli.errors import CliError, UsageError
from valyent_cli.cli.exits import Exit
from valyent_cli.cli.options import FleetOpt, JsonOpt

if TYPE_CHECKING:
    from valyent_cli.api import FileSystem
    from valyent_cli.cli.context import AppContext

app = typer.Typer(name="fs", help="Read and write a machine's files.", no_args_is_help=True)

MachineArg = Annotated[str, typer.Argument(metavar="MACHINE", help="Machine id or unique id prefix.", show_default=False, autocompletion=complete.machines)]
PathArg = Annotated[str, typer.Argument(metavar="PATH", help="Path on the machine.", show_default=False)]


def _fs(ctx: typer.Context, fleet: str | None, machine: str) -> tuple[FileSystem, str]:
    app_: AppContext = ctx.obj
    app_.require_initd()
    found = resolve.machine(app_, resolve.fleet(app_, fleet), machine)
    machine_id = str(found["id"])
    return app_.connect().fs(machine_id), machine_id


def _check_path(path: str, what: str = "PATH") -> str:
    if not path.strip():
        raise UsageError(f"{what} must not be empty")
    if "\0" in path:
        raise UsageError(f"{what} must not contain a NUL byte")
    from valyent_cli.cli.validate import text

    return text(path, what)


@contextmanager
def _on(machine_id: str, path: str) -> Iterator[None]:
    """Name the path in errors: a missing one is exit 4, one the machine refuses (a directory to read...) exit 1."""
    from valyent_cli.api import BadRequest, NotFound

    try:
        yield
    except NotFound:
        raise CliError(f"no such file or directory on machine {machine_id}: {path}", Exit.NOT_FOUND) from None
    except BadRequest as exc:
        message = exc.message if path in exc.message else f"{path}: {exc.message}"
        raise CliError(message, Exit.ERROR) from None


# -- ls, stat ---------------------------------------------------------------------------------------------------
def _kind(entry: dict[str, Any]) -> str:
    return "dir" if entry.get("is_dir") else "file"


def _name(entry: dict[str, Any]) -> str:
    name = str(entry.get("name", ""))
    return name + "/" if entry.get("is_dir") and not name.endswith("/") else name


def _mtime(value: Any) -> str:
    """A modification time in ISO-8601 UTC, to the second (what the API gives)."""
    from valyent_cli.cli.humanize import clock

    text = clock(value)
    return text[:-5] + "Z" if text.endswith("Z") else text


@app.command("ls")
def ls(
    ctx: typer.Context,
    machine: MachineArg,
    path: Annotated[str, typer.Argument(metavar="PATH", help="Directory on the machine.")] = "/",
    long: Annotated[bool, typer.Option("--long", "-l", help="A table with human sizes and modification times.")] = False,
    json: JsonOpt = False,
    fleet: FleetOpt = None,
) -> None:
    """List a directory (directories end with /).

    Examples:

    \b
      valyent fs ls 01hx3kq2m8vd /etc
      valyent fs ls -l 01hx3kq2m8vd /app
      valyent fs ls 01hx3kq2m8vd / --json | jq -r '.[].path'
    """
    from valyent_cli.api import BadRequest

    _check_path(path)
    fs, machine_id = _fs(ctx, fleet, machine)
    out = ctx.obj.output(json=json)
    with _on(machine_id, path):
        try:
            entries = fs.ls(path)
        except BadRequest:
            # Not a directory: show the file itself, as ls does (a missing path still ends as exit 4).
            single = fs.stat(path)
            if single.get("is_dir"):
                raise
            entries = [single]
    if json:
        out.data(entries)
        return
    if not long:
        if not entries:
            out.info(f"{path} is empty.")
        out.ids(_name(e) for e in entries)
        return
    from valyent_cli.cli.output import Column
    from valyent_cli.cli.humanize import human_size

    out.table(
        entries,
        [
            Column("Name", _name),
            Column("Size", lambda e: "-" if e.get("is_dir") else human_size(e.get("size")), justify="right"),
            Column("Modified", lambda e: _mtime(e.get("mod_time"))),
        ],
        empty=f"{path} is empty.",
    )


@app.command("stat")
def stat(ctx: typer.Context, machine: MachineArg, path: PathArg, json: JsonOpt = False, fleet: FleetOpt = None) -> None:
    """Show a file's or directory's type, size and modification time.

    Example:

    \b
      valyent fs stat 01hx3kq2m8vd /app/config.json
    """
    from valyent_cli.cli.humanize import ago, human_size

    _check_path(path)
    fs, machine_id = _fs(ctx, fleet, machine)
    with _on(machine_id, path):
        entry = fs.stat(path)
    size = entry.get("size")
    ctx.obj.output(json=json).fields(
        entry,
        [
            ("Path", entry.get("path", path)),
            ("Type", _kind(entry)),
            ("Size", f"{size} bytes ({human_size(size)})" if isinstance(size, int) else size),
            ("Modified", f"{_mtime(entry.get('mod_time'))} ({ago(entry.get('mod_time'))})"),
        ],
    )


# -- reading -----------------------------------------------------------------------------------------------------
def _to_stdout(fs: FileSystem, machine_id: str, path: str) -> None:
    from valyent_cli.cli.output import reader_may_leave

    sys.stdout.flush()
    target = sys.stdout.buffer
    with reader_may_leave():
        with _on(machine_id, path), fs.open(path) as chunks:
            for chunk in chunks:
                target.write(chunk)
        target.flush()


@app.command("cat")
def cat(ctx: typer.Context, machine: MachineArg, path: PathArg, fleet: FleetOpt = None) -> None:
    """Print a file's bytes to stdout, as they are (binary-safe, streamed).

    Examples:

    \b
      valyent fs cat 01hx3kq2m8vd /etc/hostname
      valyent fs cat 01hx3kq2m8vd /data/dump.tar.gz | tar xz
    """
    _check_path(path)
    fs, machine_id = _fs(ctx, fleet, machine)
    _to_stdout(fs, machine_id, path)


#: transfers at least this large (or of unknown size) show a progress bar on a terminal
PROGRESS_FROM = 1024 * 1024


@contextmanager
def _transfer(what: str, total: Any) -> Iterator[Any]:
    """A progress bar on stderr (bytes, rate, time left) for a long transfer, when stderr is a terminal; yields the
    function to call with each chunk's size, or None (no terminal, or a small file: nothing is shown)."""
    if not sys.stderr.isatty():
        yield None
        return
    size = total()
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        size = None
    if size is not None and size < PROGRESS_FROM:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    from valyent_cli.cli.humanize import human_size

    class Speed(ProgressColumn):  # rich's TransferSpeedColumn says MB/s: binary units, as the sizes beside it
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{human_size(speed)}/s" if speed else "?", style="progress.data.speed")

    console = Console(file=sys.stderr, no_color="NO_COLOR" in os.environ)
    # binary units throughout (MiB, MiB/s), as every size the CLI prints (humanize.human_size)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True), Speed(),
                  TimeRemainingColumn(), console=console, transient=False) as bar:
        task = bar.add_task(what, total=size)
        yield lambda n: bar.advance(task, n)


class _Counted:
    """A file object that reports how many bytes were read from it (for an upload's progress)."""

    def __init__(self, fileobj: Any, advance: Any) -> None:
        self._fileobj = fileobj
        self._advance = advance

    def read(self, size: int = -1) -> bytes:
        data = self._fileobj.read(size)
        self._advance(len(data))
        return data

    def __getattr__(self, name: str) -> Any:  # fileno, seek, tell: httpx sizes the upload by them
        return getattr(self._fileobj, name)


def _local_target(remote: str, local: str | None) -> str:
    """Where `get` writes: LOCAL, a file inside LOCAL when it is a directory, or the remote's name in the cwd."""
    name = os.path.basename(remote.rstrip("/"))
    if local is None or os.path.isdir(local) or local.endswith(os.sep):
        if not name:
            raise UsageError(f"cannot name a local file after {remote!r}: give LOCAL, the file to write")
        directory = local if local is not None else "."
        if not os.path.isdir(directory):
            raise UsageError(f"LOCAL: directory {local!r} does not exist")
        return os.path.join(directory, name)
    parent = os.path.dirname(local) or "."
    if not os.path.isdir(parent):
        raise UsageError(f"LOCAL: directory {parent!r} does not exist")
    return local


@app.command("get")
def get(
    ctx: typer.Context,
    machine: MachineArg,
    remote: Annotated[str, typer.Argument(metavar="REMOTE", help="File on the machine.", show_default=False)],
    local: Annotated[
        str | None,
        typer.Argument(metavar="LOCAL",
                       help="Local file or directory (default: the remote file's name, here); - for stdout.",
                       show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace a local file that exists.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Download a directory and all it holds.")] = False,
    fleet: FleetOpt = None,
) -> None:
    """Download a file, or with -r a directory. Each file is written to a temporary file beside its target and
    renamed when complete, so an interrupted or failed download never leaves a partial file under the target's
    name. A local file that exists is replaced only with --force. With -r, the directory goes into LOCAL when it is
    a directory (default: here), else becomes LOCAL, as `cp -r`.

    Examples:

    \b
      valyent fs get 01hx3kq2m8vd /app/data.db              # ./data.db
      valyent fs get 01hx3kq2m8vd /app/data.db backups/
      valyent fs get 01hx3kq2m8vd /app/data.db - | sha256sum
      valyent fs get -r 01hx3kq2m8vd /app/logs backups/
    """
    _check_path(remote, "REMOTE")
    if recursive:
        if local == "-":
            raise UsageError("LOCAL cannot be - (stdout) with -r: a directory goes to a directory")
        _get_tree(ctx, fleet, machine, remote, local, force)
        return
    if local == "-":
        fs, machine_id = _fs(ctx, fleet, machine)
        _to_stdout(fs, machine_id, remote)
        return
    target = _local_target(remote, local)
    if os.path.isdir(target):
        raise UsageError(f"LOCAL: {target!r} is a directory")
    if os.path.lexists(target) and not force:
        raise UsageError(f"LOCAL: {target!r} exists: pass --force to replace it")
    fs, machine_id = _fs(ctx, fleet, machine)
    out = ctx.obj.output()
    with _on(machine_id, remote), _transfer(f"Downloading {os.path.basename(remote.rstrip('/'))}", lambda: fs.stat(remote).get("size")) as advance:
        size = fs.download_to(remote, target, advance)
    from valyent_cli.cli.humanize import human_size

    out.done(f"Downloaded {remote} to {target} ({human_size(size)})")


# -- writing -----------------------------------------------------------------------------------------------------
@app.command("put")
def put(
    ctx: typer.Context,
    machine: MachineArg,
    local: Annotated[str, typer.Argument(metavar="LOCAL", help="Local file, or - for stdin.", show_default=False)],
    remote: Annotated[
        str, typer.Argument(metavar="REMOTE", help="Path on the machine; ending in / puts the file inside that directory.",
                            show_default=False)
    ],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Upload a directory and all it holds.")] = False,
    fleet: FleetOpt = None,
) -> None:
    """Upload a file (streamed; parent directories are created), or with -r a directory: it goes into REMOTE when
    that is a directory (or ends with /), else becomes REMOTE, as `cp -r`.

    Examples:

    \b
      valyent fs put 01hx3kq2m8vd ./config.json /app/
      tar cz src | valyent fs put 01hx3kq2m8vd - /tmp/src.tar.gz
      valyent fs put -r 01hx3kq2m8vd ./static /app/
    """
    _check_path(remote, "REMOTE")
    if recursive:
        _put_tree(ctx, fleet, machine, local, remote)
        return
    if local == "-":
        if remote.endswith("/"):
            raise UsageError("REMOTE must name the file when reading stdin (-): it ends with /")
        source = None
    else:
        if not os.path.exists(local):
            raise UsageError(f"LOCAL: no such file: {local}")
        if os.path.isdir(local):
            raise UsageError(f"LOCAL: {local} is a directory: upload it with -r")
        if remote.endswith("/"):
            remote += os.path.basename(local)
        try:
            source = open(local, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"LOCAL: cannot read {local}: {exc.strerror}") from None
    try:
        fs, machine_id = _fs(ctx, fleet, machine)
        data = source if source is not None else sys.stdin.buffer
        size = os.fstat(source.fileno()).st_size if source is not None else None
        with _on(machine_id, remote), _transfer(f"Uploading {os.path.basename(local) if source is not None else 'stdin'}",
                                                lambda: size) as advance:
            note = fs.write(remote, _Counted(data, advance) if advance is not None else data)
    finally:
        if source is not None:
            source.close()
    if note and local != "-":  # a file that grew meanwhile, or one of unknown size (/proc): say how it went
        ctx.obj.output().info(f"Note: {note}")
    ctx.obj.output().done(f"Uploaded {'stdin' if local == '-' else local} to {remote}")


def _put_tree(ctx: typer.Context, fleet: str | None, machine: str, local: str, remote: str) -> None:
    from valyent_cli.cli.humanize import human_size
    from valyent_cli.commands.fs_tree import put_tree

    if not os.path.isdir(local):
        raise UsageError(f"LOCAL: {local!r} is not a directory (-r uploads a directory)")
    fs, machine_id = _fs(ctx, fleet, machine)
    out = ctx.obj.output()
    with _on(machine_id, remote):
        files, size, made = put_tree(fs, out, local, remote)
    out.done(f"Uploaded {local} to {made}: {files} file{'s' if files != 1 else ''} ({human_size(size)})")


def _get_tree(ctx: typer.Context, fleet: str | None, machine: str, remote: str, local: str | None, force: bool) -> None:
    from valyent_cli.cli.humanize import human_size
    from valyent_cli.commands.fs_tree import get_tree

    fs, machine_id = _fs(ctx, fleet, machine)
    out = ctx.obj.output()
    with _on(machine_id, remote):
        files, size, made = get_tree(fs, out, remote, local, force=force)
    out.done(f"Downloaded {remote} to {made}: {files} file{'s' if files != 1 else ''} ({human_size(size)})")


@app.command("mkdir")
def mkdir(ctx: typer.Context, machine: MachineArg, path: PathArg, fleet: FleetOpt = None) -> None:
    """Create a directory and its missing parents (no error if it exists).

    Example:

    \b
      valyent fs mkdir 01hx3kq2m8vd /app/data/cache
    """
    _check_path(path)
    fs, machine_id = _fs(ctx, fleet, machine)
    with _on(machine_id, path):
        fs.mkdir(path)
    ctx.obj.output().done(f"Created {path}")


@app.command("rm")
def rm(
    ctx: typer.Context,
    machine: MachineArg,
    path: PathArg,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Remove a directory and everything in it.")
    ] = False,
    fleet: FleetOpt = None,
) -> None:
    """Remove a file, or with -r a directory and its contents.

    Examples:

    \b
      valyent fs rm 01hx3kq2m8vd /tmp/out.log
      valyent fs rm -r 01hx3kq2m8vd /app/cache
    """
    _check_path(path)
    if path.strip().strip("/") == "":
        raise UsageError("refusing to remove the machine's root directory /")
    fs, machine_id = _fs(ctx, fleet, machine)
    with _on(machine_id, path):
        # The API removes recursively whatever it is given: look first, so a directory needs -r.
        entry = fs.stat(path)
        if entry.get("is_dir") and not recursive:
            raise UsageError(f"{path} is a directory: pass -r (--recursive) to remove it and everything in it")
        fs.rm(path)
    ctx.obj.output().done(f"Removed {path}")
