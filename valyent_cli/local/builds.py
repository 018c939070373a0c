"""Image builds on the sandbox, following Ravel's builds API (`ravel/server/endpoints/builds.go`).

`POST /v1/namespaces/{ns}/builds?image_name=&tag=&registry=&dockerfile=&target=&no_cache=&build_arg=K=V` with the
build context as the multipart file `context` (a tar.gz) answers the Build at once (status `pending`); the engine
of the sandbox's driver (`<engine> build`) then builds and tags it (`building`), pushes it when a registry is
given (`pushing`), and the build ends `completed` or `failed`. The image is tagged `[registry/]name:tag`, so
`machines create --image name:tag` runs it at once. The log (`.../logs`, `?follow=true` live) is the engine's
output as plain text. Without a container engine (the process driver) creating a build answers 501 (saying why);
listing and reading builds work (what an earlier run with an engine left, or none).

State: the `builds` table of the sandbox's database; each build's files (context, log) in `<data dir>/builds/<id>`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from valyent_cli.local import ids
from valyent_cli.local.drivers.container import namespace_image
from valyent_cli.local.problems import Problem, invalid, not_found, precondition
from valyent_cli.local.routes.common import path_namespace, query_flag
from valyent_cli.local.store import now_rfc3339

SCHEMA = """
CREATE TABLE IF NOT EXISTS builds (
    id TEXT PRIMARY KEY, namespace TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS builds_namespace ON builds(namespace, created_at);
"""
FINAL = ("completed", "failed")
BUILT_BY, BUILT_FOR = "valyent.build.sandbox", "valyent.build.namespace"  # labels on every image a build makes
MAX_CONTEXT = 2 * 1024 ** 3
#: the most entries a build context may hold: each costs a file to create, and 300,000 empty ones fit in 2.7 MB
MAX_ENTRIES = 100_000


class BuildService:
    def __init__(self, store, data_dir: Path, driver):
        self.db = store.db
        self.dir = data_dir / "builds"
        self.engine: str | None = getattr(driver, "engine", None)
        self.sandbox_id: str = getattr(driver, "sandbox_id", "")
        self.driver_name = driver.name
        self.db.executescript(SCHEMA)
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.wakeups: dict[str, asyncio.Event] = {}
        self.tasks: set[asyncio.Task] = set()
        self.cancelled: set[str] = set()
        self.cgroupfs: bool | None = None

    # -- state ----------------------------------------------------------------------------------------------
    def get(self, namespace: str, build_id: str) -> dict:
        row = self.db.execute("SELECT body FROM builds WHERE id = ? AND namespace = ?", (build_id, namespace)).fetchone()
        if row is None:
            raise not_found("build")
        return json.loads(row[0])

    def list(self, namespace: str, limit: int) -> list[dict]:
        rows = self.db.execute("SELECT body FROM builds WHERE namespace = ? ORDER BY created_at DESC, id DESC LIMIT ?",
                               (namespace, limit))
        return [json.loads(r[0]) for r in rows]

    def _save(self, build: dict) -> None:
        self.db.execute("INSERT OR REPLACE INTO builds (id, namespace, body, created_at) VALUES (?, ?, ?, ?)",
                        (build["id"], build["namespace"], json.dumps(build), build["created_at"]))
        self._wake(build["id"])

    def _update(self, build_id: str, **fields) -> dict:
        row = self.db.execute("SELECT body FROM builds WHERE id = ?", (build_id,)).fetchone()
        build = {**json.loads(row[0]), **{k: v for k, v in fields.items() if v is not None}}
        self._save(build)
        return build

    def _wake(self, build_id: str) -> None:
        event = self.wakeups.pop(build_id, None)
        if event is not None:
            event.set()

    def log_path(self, build_id: str) -> Path:
        return self.dir / build_id / "log"

    def reconcile(self) -> None:
        """Builds a previous server left unfinished failed with it."""
        for (body,) in self.db.execute("SELECT body FROM builds").fetchall():
            build = json.loads(body)
            if build["status"] not in FINAL:
                self._update(build["id"], status="failed", error="the sandbox server stopped during the build",
                             completed_at=now_rfc3339())

    def require_engine(self) -> str:
        if not self.engine:
            raise Problem("NOT_IMPLEMENTED", f"builds need a container engine, and this sandbox runs machines with "
                          f"the {self.driver_name} driver: restart it with `valyent local start --driver podman` "
                          "(or docker)", status=501)
        return self.engine

    # -- a build ----------------------------------------------------------------------------------------------
    async def create(self, namespace: str, query, context_file, no_cache: bool = False) -> dict:
        engine = self.require_engine()
        image = (query.get("image_name") or "").strip()
        if not image:
            raise invalid("image_name is required", "query.image_name")
        tag = (query.get("tag") or "latest").strip()
        registry = (query.get("registry") or "").strip().rstrip("/")
        build_args = []
        for item in query.getlist("build_arg"):
            if "=" not in item:
                raise invalid("build_arg must be KEY=VALUE", "query.build_arg", item)
            build_args.append(item)
        dockerfile = query.get("dockerfile") or "Dockerfile"
        # the engine's image names are global: without a registry a build is tagged under its namespace
        # (`localhost/<namespace>/<name>:<tag>`, what `machines create --image <name>:<tag>` in that namespace
        # runs: drivers/container.py), and no build replaces an image it did not make (issue 27 item 7)
        full_image = f"{registry}/{image}:{tag}" if registry else f"{namespace_image(namespace, image)}:{tag}"
        await self._check_owner(engine, full_image, namespace)
        build = {"id": "build_" + ids.ulid().lower(), "namespace": namespace, "image_name": image, "tag": tag,
                 "registry": registry, "full_image": full_image, "status": "pending", "created_at": now_rfc3339()}
        work = self.dir / build["id"]
        ctx = work / "context"
        ctx.mkdir(parents=True)
        # the headers only (entries, sizes, names, the Dockerfile): a bad context is refused before anything is
        # extracted; the extraction is the build's first step, after the answer
        try:
            await asyncio.to_thread(_scan, context_file, ctx, dockerfile)
            await asyncio.to_thread(_keep, context_file, work / "context.tar")
        except Problem:
            shutil.rmtree(work, ignore_errors=True)
            raise
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise invalid(f"the build context is not a readable tar.gz: {_no_host_paths(exc, ctx)}",
                          "body.context") from None
        df = ctx / dockerfile
        # --force-rm: a failed build leaves no working container behind
        args = [engine, "build", "--force-rm", "--tag", full_image, "--file", str(df),
                "--label", f"{BUILT_BY}={self.sandbox_id}", "--label", f"{BUILT_FOR}={namespace}"]
        if await self._own_cgroups():
            # its RUN steps in a cgroup of their own, so that a cancel can end them (they leave the process tree)
            args += ["--cgroup-parent", f"/{_cgroup_name(build['id'])}"]
        if query.get("target"):
            args += ["--target", query["target"]]
        if no_cache:
            args.append("--no-cache")
        for item in build_args:
            args += ["--build-arg", item]
        args.append(str(ctx))
        self.log_path(build["id"]).touch()
        self._save(build)
        task = asyncio.get_running_loop().create_task(self._run(build, args, registry))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return build

    async def _check_owner(self, engine: str, image: str, namespace: str) -> None:
        """409 when `image` exists and this namespace of this sandbox did not build it."""
        proc = await asyncio.create_subprocess_exec(engine, "image", "inspect", "--format", "{{json .Config.Labels}}",
                                                    image,
                                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                    stderr=subprocess.DEVNULL)
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            return  # no such image
        try:
            labels = json.loads(out.decode() or "null") or {}
        except ValueError:
            labels = {}
        if labels.get(BUILT_BY) != self.sandbox_id or labels.get(BUILT_FOR) != namespace:
            raise Problem("ALREADY_EXISTS", f"the image {image} exists and was not built by this namespace of the "
                          "sandbox: a build does not replace it (choose another name or tag)")

    async def _run(self, build: dict, args: list[str], registry: str) -> None:
        bid = build["id"]
        started = time.monotonic()
        ctx = self.dir / bid / "context"
        ok, error = await self._unpack(bid, ctx, Path(args[args.index("--file") + 1]))
        if ok:
            self._update(bid, status="building")
            ok, error = await self._step(bid, args, "build")
        if error:
            error = _no_host_paths(error, ctx, self.dir.parent)
        if ok and registry:
            self._update(bid, status="pushing")
            ok, error = await self._step(bid, [args[0], "push", build["full_image"]], "push")
        fields = {"duration_ms": int((time.monotonic() - started) * 1000), "completed_at": now_rfc3339()}
        if ok:
            digest = await self._digest(args[0], build["full_image"])
            self._update(bid, status="completed", digest=digest, **fields)
        else:
            self._update(bid, status="failed", error=error, **fields)
        shutil.rmtree(self.dir / bid / "context", ignore_errors=True)
        for _ in range(20):  # a killed RUN step leaves its cgroup once the kernel reaped it
            if not _kill_cgroup(_cgroup_name(bid), remove=True):
                break
            await asyncio.sleep(0.1)

    async def _unpack(self, bid: str, ctx: Path, dockerfile: Path) -> tuple[bool, str | None]:
        """Extract the context the request brought (checked by `_scan`); (ok, error)."""
        archive = ctx.parent / "context.tar"
        try:
            with open(archive, "rb") as fh:
                await asyncio.to_thread(_extract, fh, ctx)
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            return False, f"the build context could not be extracted: {exc}"
        finally:
            archive.unlink(missing_ok=True)
        df = dockerfile.resolve()
        if not str(df).startswith(str(ctx.resolve()) + os.sep) or not df.is_file():
            return False, f"no {dockerfile.relative_to(ctx)} in the build context"
        return True, None

    async def _step(self, bid: str, args: list[str], what: str) -> tuple[bool, str | None]:
        if bid in self.cancelled:
            return False, "build canceled"
        with open(self.log_path(bid), "ab") as log:
            try:
                proc = await asyncio.create_subprocess_exec(*args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                            stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                log.write(f"cannot run {args[0]}: {exc.strerror or exc}\n".encode())
                return False, f"cannot run {os.path.basename(args[0])}: {exc.strerror or type(exc).__name__}"
            self.procs[bid] = proc
            last = b""
            assert proc.stdout is not None
            ctx = self.dir / bid / "context"
            hide = sorted({os.fsencode(ctx), os.fsencode(os.path.realpath(ctx))}, key=len, reverse=True)
            async for line in proc.stdout:
                for path in hide:  # the engine names the context directory: the log says `.`
                    line = line.replace(path, b".")
                log.write(line)
                log.flush()
                if line.strip():
                    last = line.strip()
                self._wake(bid)
            code = await proc.wait()
            self.procs.pop(bid, None)
        if bid in self.cancelled:
            return False, "build canceled"
        if code != 0:
            return False, f"{what} failed (exit {code}): {last.decode(errors='replace')}"
        return True, None

    async def _own_cgroups(self) -> bool:
        """Whether RUN steps can go into a cgroup we name: podman as root with the cgroupfs manager."""
        if self.cgroupfs is None:
            self.cgroupfs = False
            if os.path.basename(self.engine or "") == "podman" and os.geteuid() == 0:
                proc = await asyncio.create_subprocess_exec(self.engine, "info", "--format", "{{.Host.CgroupManager}}",
                                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                out, _ = await proc.communicate()
                self.cgroupfs = out.decode().strip() == "cgroupfs"
        return self.cgroupfs

    async def _digest(self, engine: str, image: str) -> str | None:
        proc = await asyncio.create_subprocess_exec(engine, "image", "inspect", "--format", "{{.Id}}", image,
                                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out, _ = await proc.communicate()
        ident = out.decode().strip()
        if not ident:
            return None
        return ident if ident.startswith("sha256:") else f"sha256:{ident}"

    def cancel(self, namespace: str, build_id: str) -> None:
        build = self.get(namespace, build_id)
        if build["status"] in FINAL:
            raise precondition(f"build is already {build['status']}")
        self.cancelled.add(build_id)
        self._stop(build_id)

    def _stop(self, build_id: str, grace: float = 3.0) -> None:
        """End a build. Its RUN step first, by its cgroup: the engine then fails the build and removes its working
        containers itself. The engine's client gets SIGTERM after `grace` seconds if it is still at it (a COPY, a
        pull), SIGKILL 5 s later."""
        _kill_cgroup(_cgroup_name(build_id))
        proc = self.procs.get(build_id)
        if proc is not None and proc.returncode is None:
            loop = asyncio.get_running_loop()
            loop.call_later(grace, _signal_group, proc, signal.SIGTERM)
            loop.call_later(grace + 5, _signal_group, proc, signal.SIGKILL)

    async def follow(self, build_id: str, follow: bool):
        """The log's bytes, then, with follow, what comes until the build ends."""
        path = self.log_path(build_id)
        with open(path, "rb") as fh:
            while True:
                event = self.wakeups.setdefault(build_id, asyncio.Event())
                chunk = fh.read(64 * 1024)
                if chunk:
                    yield chunk
                    continue
                if not follow:
                    return
                row = self.db.execute("SELECT body FROM builds WHERE id = ?", (build_id,)).fetchone()
                if row is None or json.loads(row[0])["status"] in FINAL:
                    rest = fh.read()
                    if rest:
                        yield rest
                    return
                try:
                    await asyncio.wait_for(event.wait(), 5)
                except asyncio.TimeoutError:
                    pass

    async def shutdown(self) -> None:
        for bid in list(self.procs):
            self.cancelled.add(bid)
            self._stop(bid, grace=1.0)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)


def _cgroup_name(build_id: str) -> str:
    return f"valyent-{build_id.replace('_', '-')}"


def _signal_group(proc, sig: int) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            pass


def _kill_cgroup(name: str, remove: bool = False) -> bool:
    """SIGKILL every process in the cgroup `name` (v1 controllers and v2); with `remove`, delete the empty dirs.
    Returns whether any of its directories is left."""
    import glob

    dirs = glob.glob(f"/sys/fs/cgroup/*/{name}") + glob.glob(f"/sys/fs/cgroup/{name}")
    for top in dirs:
        for here, subdirs, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            if not remove:
                try:
                    with open(os.path.join(here, "cgroup.procs")) as fh:
                        pids = [int(p) for p in fh.read().split()]
                except (OSError, ValueError):
                    continue
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            else:
                try:
                    os.rmdir(here)
                except OSError:
                    pass
    return any(os.path.isdir(d) for d in dirs)


def _scan(fileobj, dest: Path, dockerfile: str) -> None:
    """Check a context by its headers alone, stopping at the first fault: at most MAX_ENTRIES entries and
    MAX_CONTEXT bytes, nothing the extraction would refuse (absolute, `..`, a link out, a device), and the
    Dockerfile among them. A 400 Problem (naming no host path) when it fails."""
    import posixpath

    fileobj.seek(0)
    want = posixpath.normpath(dockerfile)
    found = False
    with tarfile.open(fileobj=fileobj, mode="r:*") as tar:
        total = count = 0
        while (member := tar.next()) is not None:
            count += 1
            if count > MAX_ENTRIES:
                raise invalid(f"the build context has more than {MAX_ENTRIES} entries: leave out what the image "
                              "does not need (.dockerignore)", "body.context")
            total += max(member.size, 0)
            if total > MAX_CONTEXT:
                raise invalid("the build context is larger than 2 GiB", "body.context")
            if member.name.startswith("/"):  # the data filter would only strip the slash: refuse it, as `..`
                raise invalid(f"refusing {member.name!r} in the build context (an absolute path)", "body.context")
            if hasattr(tarfile, "data_filter"):
                try:
                    tarfile.data_filter(member, str(dest))
                except tarfile.FilterError as exc:
                    raise invalid(f"refusing {member.name!r} in the build context: "
                                  f"{_no_host_paths(type(exc).__name__, dest)}", "body.context") from None
            elif member.name.startswith("/") or ".." in member.name.split("/") or not (member.isfile()
                                                                                      or member.isdir()):
                raise invalid(f"refusing {member.name!r} in the build context (absolute, .., a link or a device)",
                              "body.context")
            found = found or posixpath.normpath(member.name) == want
            tar.members.clear()  # headers are not kept: 100,000 of them would hold memory for nothing
    if not found:
        raise invalid(f"no {dockerfile} in the build context", "query.dockerfile", dockerfile)


def _keep(fileobj, path: Path) -> None:
    """The uploaded context, copied beside the build (the request's file goes when the answer is sent)."""
    fileobj.seek(0)
    with open(path, "wb") as out:
        shutil.copyfileobj(fileobj, out, 1024 * 1024)


def _no_host_paths(text: object, ctx: Path, data_dir: Path | None = None) -> str:
    """A message about a build with its context directory said as `.`, and the sandbox's data dir as
    `<data dir>`: no host path reaches an answer."""
    text = str(text)
    for path, said in ((ctx, "."), (data_dir, "<data dir>")):
        if path is None:
            continue
        for form in {str(path), os.path.realpath(path)}:
            text = text.replace(form + "/", "./" if said == "." else said + "/").replace(form, said)
    return text


def _extract(fileobj, dest: Path) -> None:
    fileobj.seek(0)
    with tarfile.open(fileobj=fileobj, mode="r:*") as tar:
        total = 0
        for member in tar.getmembers():
            total += max(member.size, 0)
            if total > MAX_CONTEXT:
                raise ValueError("the build context is larger than 2 GiB")
            if member.name.startswith("/"):  # the data filter would only strip the slash: refuse it, as `..`
                raise ValueError(f"refusing {member.name!r} in the build context (an absolute path)")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")  # no `..` out of dest, no links out of dest, no devices
            return
        # Python before 3.11.4: only plain files and directories, with relative paths that stay inside
        members = []
        for member in tar.getmembers():
            parts = member.name.split("/")
            if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                raise ValueError(f"refusing {member.name!r} in the build context (absolute, .., a link or a device)")
            members.append(member)
        tar.extractall(dest, members=members)


# -- HTTP ---------------------------------------------------------------------------------------------------------
def _svc(request: Request) -> BuildService:
    return request.app.state.builds


async def create_build(request: Request) -> Response:
    svc = _svc(request)
    svc.require_engine()
    form = await request.form(max_files=1, max_fields=10)
    try:
        upload = form.get("context")
        if upload is None or isinstance(upload, str):
            raise invalid("context file is required", "body.context")
        build = await svc.create(path_namespace(request), request.query_params, upload.file,
                                 query_flag(request, "no_cache"))
    finally:
        await form.close()
    return JSONResponse(build)


async def list_builds(request: Request) -> Response:
    svc = _svc(request)
    raw = request.query_params.get("limit") or "20"
    try:
        limit = int(raw)
    except ValueError:
        raise invalid("limit must be a whole number", "query.limit", raw) from None
    return JSONResponse(svc.list(path_namespace(request), limit if limit > 0 else 20))


async def get_build(request: Request) -> Response:
    svc = _svc(request)
    return JSONResponse(svc.get(path_namespace(request), request.path_params["build_id"]))


async def build_logs(request: Request) -> Response:
    svc = _svc(request)
    build = svc.get(path_namespace(request), request.path_params["build_id"])
    follow = query_flag(request, "follow")
    return StreamingResponse(svc.follow(build["id"], follow), media_type="text/plain",
                             headers={"Cache-Control": "no-store"})


async def cancel_build(request: Request) -> Response:
    svc = _svc(request)
    svc.require_engine()
    svc.cancel(path_namespace(request), request.path_params["build_id"])
    return Response(status_code=204)


def routes() -> list[Route]:
    base = "/namespaces/{namespace}/builds"
    return [
        Route(base, create_build, methods=["POST"]),
        Route(base, list_builds, methods=["GET"]),
        Route(base + "/{build_id}", get_build, methods=["GET"]),
        Route(base + "/{build_id}/logs", build_logs, methods=["GET"]),
        Route(base + "/{build_id}/cancel", cancel_build, methods=["POST"]),
    ]
