"""A machine's log (/fleets/{fleet}/machines/{machine}/logs): its history as one JSON array, or as NDJSON that
follows new lines (`?follow=true`), read in batches off the event loop."""

from __future__ import annotations

import asyncio
from json.encoder import encode_basestring_ascii as _json_str

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from valyent_cli.local.routes.common import machine_row_of, query_flag, store_of, supervisor_of

LOG_BATCH = 5000
#: log entries read, encoded and written at once when serving history (~3 MB a write at 160 bytes a line)
LOG_HISTORY_BATCH = 20000


def _log_lines(rows: list[tuple]) -> list[str]:
    return [
        f'{{"timestamp":{ts},"instance_id":"{iid}","source":"{src}","level":"{lvl}","message":{_json_str(msg)}}}'
        for _, ts, iid, src, lvl, msg in rows
    ]


async def machine_logs(request: Request) -> Response:
    mid = machine_row_of(request)["id"]
    store = store_of(request)
    sup = supervisor_of(request)
    follow = query_flag(request, "follow")
    ndjson = follow or "application/x-ndjson" in request.headers.get("accept", "")

    def read_text(after: int) -> tuple[int, int, bytes]:  # in a worker thread
        return store.read_log_text(mid, after, LOG_HISTORY_BATCH, store.reader())

    async def history_ndjson():
        after = 0
        while True:
            count, after, chunk = await asyncio.to_thread(read_text, after)
            if count:
                yield chunk
            if count < LOG_HISTORY_BATCH:
                break
        if not follow:
            return
        rt = sup.rt(mid)
        while True:
            woken = rt.log_event  # taken before reading: a line written after the read sets this event
            rows = store.read_logs(mid, after, LOG_BATCH)
            if rows:
                after = rows[-1][0]
                yield ("\n".join(_log_lines(rows)) + "\n").encode()
                continue
            row = store.machine_row(mid)
            if sup.shutting_down or row is None or row["state"] == "destroyed":
                return
            await woken.wait()

    async def history_array():
        after = 0
        first = True
        yield b"["
        while True:
            count, after, chunk = await asyncio.to_thread(read_text, after)
            if count:
                # one entry a line, and a line holds no raw newline (JSON escapes it): the commas go there
                yield (b"" if first else b",") + chunk[:-1].replace(b"\n", b",")
                first = False
            if count < LOG_HISTORY_BATCH:
                break
        yield b"]"

    if ndjson:
        return StreamingResponse(history_ndjson(), media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    return StreamingResponse(history_array(), media_type="application/json")
