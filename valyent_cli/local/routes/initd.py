"""Each machine's initd (/initd/{machine_id}): its status, exec, and the file system API (ls, stat, mkdir, read,
write, rm), which sees what the machine's processes see (volumes and shared host directories included)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from valyent_cli.local import bodies, fs
from valyent_cli.local.problems import Problem, check_exec, invalid, not_found, precondition
from valyent_cli.local.routes.common import json_body, store_of, supervisor_of


def _initd_machine(request: Request) -> str:
    """The machine behind an initd URL. Its namespace is checked only when the request names one: the
    cloud's initd host is per machine and knows no namespace."""
    mid = request.path_params["machine_id"]
    row = store_of(request).machine_row(mid)
    ns = request.query_params.get("namespace")
    if row is None or (ns and row["namespace"] != ns):
        raise not_found("machine")
    if row["state"] != "running":
        raise precondition(f"machine is not running (state: {row['state']}): its initd cannot be reached")
    return mid


async def _root(request: Request, mid: str) -> Path:
    return await supervisor_of(request).fs_root(mid)


async def _fs_at(request: Request, mid: str, path: object, *, write: bool = False,
                 location: str = "query.path") -> tuple[Path, object, str]:
    """Where the fs API finds a machine path: (host directory, path inside it, its mount point). A path under a
    volume or a host system directory is served from it, so `fs` sees what the machine's processes see."""
    root = await _root(request, mid)
    if not isinstance(path, str) or not path:
        return root, path, "/"
    from valyent_cli.local import isolation

    sup = supervisor_of(request)
    row = store_of(request).machine_row(mid)
    base, rest, mount_point, read_only = isolation.view(root, await sup.fs_mounts(row, json.loads(row["config"])), path)
    if write and read_only:
        raise invalid(f"{path}: read-only file system (the host's {mount_point}, shared read-only)", location, path)
    return base, rest, mount_point


def _fix_entry(entry: dict, mount_point: str) -> dict:
    if mount_point != "/":
        entry["path"] = mount_point.rstrip("/") + entry["path"] if entry["path"] != "/" else mount_point
        entry["name"] = entry["path"].rsplit("/", 1)[-1]
    return entry


async def initd_status(request: Request) -> Response:
    _initd_machine(request)
    return JSONResponse({"ok": True})


async def initd_exec(request: Request) -> Response:
    mid = _initd_machine(request)
    cmd, timeout_ms = check_exec(bodies.check_body(await json_body(request), bodies.EXEC))
    return JSONResponse(await supervisor_of(request).exec(mid, cmd, timeout_ms))


async def fs_ls(request: Request) -> Response:
    mid = _initd_machine(request)
    base, path, mp = await _fs_at(request, mid, request.query_params.get("path"))
    return JSONResponse([_fix_entry(e, mp) for e in fs.ls(base, path)])


async def fs_stat(request: Request) -> Response:
    mid = _initd_machine(request)
    base, path, mp = await _fs_at(request, mid, request.query_params.get("path"))
    return JSONResponse(_fix_entry(fs.stat(base, path), mp))


async def fs_mkdir(request: Request) -> Response:
    mid = _initd_machine(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise invalid("the body must be an object", "body")
    base, path, _ = await _fs_at(request, mid, body.get("dir"), write=True, location="body.dir")
    fs.mkdir(base, path)
    return JSONResponse({"ok": True})


async def fs_rm(request: Request) -> Response:
    mid = _initd_machine(request)
    base, path, mp = await _fs_at(request, mid, request.query_params.get("path"), write=True)
    if mp != "/" and path == "/":
        raise invalid(f"{mp} is a mount point: it cannot be removed", "query.path", mp)
    await asyncio.to_thread(fs.rm, base, path)
    return JSONResponse({"ok": True})


async def fs_read(request: Request) -> Response:
    mid = _initd_machine(request)
    base, path, _ = await _fs_at(request, mid, request.query_params.get("path"))
    file, size = await asyncio.to_thread(fs.open_for_read, base, path)
    return StreamingResponse(_chunks(file, size), media_type="application/octet-stream",
                             headers={"content-length": str(size)})


async def _chunks(file, size: int):
    """The `size` bytes the file held when it was opened, read from its fd (never reopened by name)."""
    try:
        left = size
        while left > 0:
            chunk = await asyncio.to_thread(file.read, min(left, 256 * 1024))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        file.close()


async def fs_write(request: Request) -> Response:
    mid = _initd_machine(request)
    root = await _root(request, mid)
    upload_dir = supervisor_of(request).driver.upload_dir(mid, root)
    upload = fs.UploadParser(request.headers.get("content-type", ""), root, upload_dir)
    try:
        try:
            async for chunk in request.stream():
                upload.feed(chunk)
            upload.finish()
        except Problem:
            raise
        except Exception as exc:  # python-multipart's parse errors
            if type(exc).__module__.startswith("python_multipart"):
                raise invalid(f"invalid multipart body: {exc}", "body") from None
            raise
        raw = upload.fields.get("path")
        if raw is not None:
            base, path, _ = await _fs_at(request, mid, raw.decode("utf-8", errors="replace"), write=True,
                                         location="body.path")
            if isinstance(path, str):
                upload.fields["path"] = path.encode()
            root = base
        fs.commit_upload(root, upload)
    finally:
        upload.discard()
    return JSONResponse({"ok": True})
