"""Uploads: streamed to a private folder under the size cap, then turned into examples or
vectors by jobs in the service's shared decode pool, cancelled when the client goes away.

At most `max_jobs` upload requests are handled at once (the rest get 503 with Retry-After), so
uploads can neither fill the temporary folder nor queue unbounded work.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from .base import HttpError, ServeSettings
from .examples import Cancelled, Example, upload_example
from .forms import UploadFolder

if TYPE_CHECKING:
    from .service import SearchService

_CHUNK = 1024 * 1024
_RETRY_S = 5
T = TypeVar("T")


@asynccontextmanager
async def upload_slot(request: Request) -> AsyncIterator[None]:
    """One of the `max_jobs` places for an upload request, or 503."""
    state = request.app.state
    limits: ServeSettings = state.settings
    if state.uploads >= limits.max_jobs:
        raise HttpError(
            503, "the service is busy with other uploads", "try again shortly", _RETRY_S
        )
    state.uploads += 1  # the event loop's thread only: no lock needed
    try:
        yield
    finally:
        state.uploads -= 1


async def save_uploads(
    request: Request, form: FormData, name: str, folder: UploadFolder
) -> list[Path]:
    uploads = [u for u in form.getlist(name) if isinstance(u, UploadFile)]
    return [await save_upload(request, upload, folder) for upload in uploads]


async def save_upload(request: Request, upload: UploadFile, folder: UploadFolder) -> Path:
    """Copy one upload into the request's private folder, refusing it past the size cap."""
    cap = request.app.state.settings.max_upload_bytes
    path = folder.new_file(upload.filename)
    written = 0
    with path.open("wb") as out:
        while chunk := await upload.read(_CHUNK):
            written += len(chunk)
            if written > cap:
                raise HttpError(413, f"{upload.filename}: larger than {cap} bytes", "send less")
            out.write(chunk)
    if written == 0:
        raise HttpError(400, f"{upload.filename or 'an upload'}: the file is empty")
    return path


async def examples_of(
    request: Request, svc: SearchService, paths: list[Path]
) -> dict[str, Example]:
    """Each uploaded example's vector, made in the shared decode pool."""
    examples = {}
    for path in paths:
        examples[str(path)] = await cancellable(
            request,
            lambda cancelled, path=path: upload_example(  # type: ignore[misc]
                path, svc.pool, svc.encoders, svc.config, cancelled
            ),
        )
    return examples


async def cancellable(request: Request, work: Callable[[threading.Event], T]) -> T:
    """`work(cancelled)` in a worker thread; `cancelled` is set once the client disconnects."""
    cancelled = threading.Event()
    watcher = asyncio.create_task(_watch(request, cancelled))
    try:
        return await run_in_threadpool(work, cancelled)
    finally:
        watcher.cancel()


async def _watch(request: Request, cancelled: threading.Event) -> None:
    while not cancelled.is_set():
        if await request.is_disconnected():
            cancelled.set()
            return
        await asyncio.sleep(0.25)


__all__ = ["Cancelled", "cancellable", "examples_of", "save_upload", "upload_slot"]
