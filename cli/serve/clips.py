"""GET /api/files/{id}/clip?start=S&end=E[&pad=P]: a span of an indexed video or audio file as a
download (MP4 for a video, M4A for a sound), named `<stem>_<start>-<end>.<ext>`.

- Only indexed files: the file is checked as the content route checks it (media.indexed: an
  indexed row, inside a root, no link, the recorded device, inode, size and mtime) and opened
  again the same way in the worker that cuts it. Anything else is 404.
- The cut (decode + encode) runs in the service's shared decode pool (media.clip_task), never in
  the server's process: the pool's bounded queue (503 with Retry-After when full), its time limit
  and memory cap apply, and a client that goes away stops its worker at once. At most a quarter
  of the pool's places (at least one) cut clips at a time, so clips leave uploads and thumbnails
  theirs (503 with Retry-After past that).
- Input: start, end and pad are plain decimal seconds (0 <= start < end, pad >= 0, at most
  6 decimals); the clip, padding included, may be at most `[serve] max_clip_s` long; an end past
  the file's end is 422. Bad values are 400s in the service's JSON error shape.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import quote

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from lbsearch.errors import MediaError
from lbsearch.media.clip_task import ClipAnswer, ClipTask
from lbsearch.media.indexed import NotServable, Roots, open_indexed
from lbsearch.types import Modality

from .api import _blocking, _id, service
from .base import RETRY_AFTER_S, HttpError
from .examples import Cancelled
from .uploads import cancellable

if TYPE_CHECKING:
    from lbsearch.catalog.records import FileRecord

    from .service import SearchService

log = logging.getLogger("lbsearch.serve")

_SECONDS = re.compile(r"^[0-9]{1,7}(\.[0-9]{1,6})?$")  # no sign, exponent, nan or inf
_KINDS = {Modality.VIDEO: (".mp4", "video/mp4"), Modality.AUDIO: (".m4a", "audio/mp4")}
_CHUNK = 256 * 1024
_NOT_FOUND = "no such file in the library"
_DURATION_SLACK_S = 1e-3  # as clip.py: a millisecond for a hit's float round trip


async def clip(request: Request) -> Response:
    file_id = _id(request, "file_id")
    start, end, pad = _span(request)
    svc = service(request)
    limit = svc.config.serve.max_clip_s
    length = end + pad - max(0.0, start - pad)
    if length > limit + 1e-9:
        raise HttpError(
            400,
            f"a clip of {length:g} s is longer than this service cuts ({limit:g} s at most, "
            "padding included)",
            "ask for a shorter span, or cut it on the machine with `lbsearch cut`",
        )
    record = await _blocking(request, svc.file, file_id)
    if record is None:
        raise HttpError(404, _NOT_FOUND)
    roots = svc.roots()
    await _blocking(request, _check_servable, record, roots)
    kind = _KINDS.get(record.modality) if record.modality else None
    if kind is None:
        raise HttpError(
            400, f"file {file_id} is not a video or audio file", "only those can be cut"
        )
    if record.duration_s is not None and end > record.duration_s + _DURATION_SLACK_S:
        raise _past_the_end(end, record.duration_s)
    async with _clip_place(request), _folder() as folder:
        out = folder / f"clip{kind[0]}"
        task = ClipTask(record, roots, start, end, pad, str(out))
        try:
            answer = await cancellable(request, lambda c: _cut(svc, record, task, c))
        except Cancelled:
            return Response(status_code=499)  # nobody reads it: the client left
        if answer.error is not None:
            raise HttpError(422, f"end={end:g} is past the end of file {file_id}", answer.hint)
        handle = out.open("rb")  # the folder goes when this block ends; the open file stays
    name = download_name(record.path, start, end, kind[0])
    return _streamed(handle, kind[1], name)


def _span(request: Request) -> tuple[float, float, float]:
    params = request.query_params
    start, end = _seconds(params, "start", None), _seconds(params, "end", None)
    pad = _seconds(params, "pad", 0.0)
    if end <= start:
        raise HttpError(
            400, f"end={end:g} is not after start={start:g}", "give an end after the start"
        )
    return start, end, pad


def _seconds(params: QueryParams, name: str, default: float | None) -> float:
    values = params.getlist(name)
    if not values and default is not None:
        return default
    example = f"e.g. {name}=12.5"
    if not values:
        raise HttpError(400, f"{name} is missing: the clip's {name}, in seconds", example)
    if len(values) > 1:
        raise HttpError(400, f"{name} was given {len(values)} times", f"give {name} once")
    value = values[0]
    if not isinstance(value, str) or not _SECONDS.match(value):
        shown = str(value)[:20]
        raise HttpError(400, f"{name}={shown!r} is not a number of seconds (0 or more)", example)
    return float(value)


def _check_servable(record: FileRecord, roots: Roots) -> None:
    try:
        handle, _ = open_indexed(record, roots)
    except NotServable as error:  # the reason stays in the log: a client learns nothing more
        log.info("not cutting file %d: %s", record.id, error.message)
        raise HttpError(404, _NOT_FOUND) from None
    handle.close()


def _past_the_end(end: float, duration: float) -> HttpError:
    return HttpError(
        422,
        f"end={end:g} is past the end of the file ({duration:.3f} s long)",
        f"give an end of at most {duration:.3f}",
    )


def _cut(
    svc: SearchService, record: FileRecord, task: ClipTask, cancelled: threading.Event
) -> ClipAnswer:
    """The task through the shared pool (PoolBusy: 503); Cancelled once the client left."""
    limit = svc.config.media.decode_timeout_s
    pool = svc.pool
    ticket = pool.submit(Path(record.path), task, cancelled)
    try:
        payload = ticket.payload(timeout_s=4 * limit if limit > 0 else None)
    except MediaError as error:
        log.info("no clip of file %d: %s", record.id, error.message)
        if error.reason == "vanished":
            raise HttpError(404, _NOT_FOUND) from None
        raise HttpError(
            422, f"file {record.id} cannot be cut: {error.detail}", error.hint
        ) from None
    finally:
        ticket.cancel()  # a no-op once answered
    if not payload:
        raise Cancelled
    return ClipAnswer.parse(payload)


@asynccontextmanager
async def _clip_place(request: Request) -> AsyncIterator[None]:
    """One of the places for clips (a quarter of the pool's, at least one), or 503."""
    state = request.app.state
    places = max(1, state.settings.max_jobs // 4)
    busy = getattr(state, "clips", 0)
    if busy >= places:
        raise HttpError(
            503, "the service is cutting other clips", "try again shortly", RETRY_AFTER_S
        )
    state.clips = busy + 1  # the event loop's thread only: no lock needed
    try:
        yield
    finally:
        state.clips -= 1


@asynccontextmanager
async def _folder() -> AsyncIterator[Path]:
    """A private folder for the worker's clip, removed with whatever is left in it."""
    folder = Path(tempfile.mkdtemp(prefix="lbsearch-clip-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def download_name(path: str, start: float, end: float, suffix: str) -> str:
    """`<stem>_<start>-<end><suffix>`, the span as `lbsearch query --cut` names clips."""
    stem = Path(path).stem or "clip"
    return f"{stem}_{start:06.1f}-{end:06.1f}{suffix}"


def content_disposition(name: str) -> str:
    """An attachment named `name`: an ASCII fallback, and the exact name in RFC 5987 form."""
    plain = re.sub(r"[^A-Za-z0-9._ -]", "_", name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def _streamed(handle: BinaryIO, media_type: str, name: str) -> Response:
    handle.seek(0, 2)
    size = handle.tell()
    headers = {
        "Content-Disposition": content_disposition(name),
        "Content-Length": str(size),
        "Cache-Control": "private, no-store",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cross-Origin-Resource-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(_chunks(handle), 200, headers, media_type=media_type)


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        handle.seek(0)
        while chunk := handle.read(_CHUNK):
            yield chunk
