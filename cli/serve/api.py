"""The JSON API of `lbsearch serve`. Handlers are thin: parse, call the service, shape JSON.

Blocking work (search, decoding, thumbnails) runs in worker threads, so one slow request never
holds up the event loop. Errors come back as {"error": message, "hint": hint} with a fitting
status: 400 bad input, 404 unknown or unservable ids, 413 too large, 422 an upload that cannot
be decoded, 503 a model or library that cannot be used now.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lbsearch.errors import (
    CheckpointError,
    LbsearchError,
    MediaError,
    ModelNotAvailableError,
    UsageError,
)
from lbsearch.search import QueryRequest
from lbsearch.thumbnails import DEFAULT_SIDE, ThumbnailError

from ..query import hit_json
from ..status import ALL, FAILED_SHOWN, status_json
from .content import NotServable, file_response
from .embedding import embed_texts, embed_uploads
from .forms import UploadFolder, file_ids, read_request, to_query

if TYPE_CHECKING:
    from .app import ServeSettings
    from .service import Found, SearchService

log = logging.getLogger("lbsearch.serve")

_UPLOAD_CHUNK = 1024 * 1024


class HttpError(Exception):
    def __init__(self, status: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


def error_response(status: int, message: str, hint: str = "") -> JSONResponse:
    body = {"error": message, **({"hint": hint} if hint else {})}
    return JSONResponse(body, status_code=status)


def status_for(error: LbsearchError) -> int:
    if isinstance(error, UsageError):
        return 400
    if isinstance(error, MediaError):
        return 422
    if isinstance(error, ModelNotAvailableError | CheckpointError):
        return 503
    return 500


def service(request: Request) -> SearchService:
    return request.app.state.service


def settings(request: Request) -> ServeSettings:
    return request.app.state.settings


# ------------------------------------------------------------------------------- search


async def search_get(request: Request) -> Response:
    return await _search(request, read_request(request.query_params), request.query_params)


async def search_post(request: Request) -> Response:
    async with _form(request) as form:
        with UploadFolder() as folder:
            like = await _save_uploads(request, form, "like", folder)
            not_like = await _save_uploads(request, form, "not_like", folder)
            try:
                return await _search(request, read_request(form, like, not_like), form)
            except MediaError as error:  # name the upload as sent, not its temporary path
                shown = folder.shown_name(error.path)
                raise HttpError(422, f"{shown}: {error.detail}", error.hint) from None


async def _search(request: Request, asked: QueryRequest, fields: Any) -> Response:
    svc = service(request)
    chosen = await run_in_threadpool(_catalog_examples, svc, fields)
    asked = dataclasses.replace(
        asked,
        like=asked.like + tuple(str(p) for p in chosen["like_id"]),
        not_like=asked.not_like + tuple(str(p) for p in chosen["not_like_id"]),
    )
    query = to_query(asked)
    found = await run_in_threadpool(svc.search, query)
    return JSONResponse({"results": [result_json(rank, f) for rank, f in enumerate(found, 1)]})


def _catalog_examples(svc: SearchService, fields: Any) -> dict[str, tuple[Path, ...]]:
    """`like_id`/`not_like_id`: examples chosen by catalog file id ("similar" on a result)."""
    chosen: dict[str, tuple[Path, ...]] = {}
    for name in ("like_id", "not_like_id"):
        paths = []
        for file_id in file_ids(fields, name):
            record = svc.file(file_id)
            if record is None:
                raise HttpError(404, f"no file with id {file_id} in the library")
            paths.append(Path(record.path))
        chosen[name] = tuple(paths)
    return chosen


def result_json(rank: int, found: Found) -> dict[str, Any]:
    """`lbsearch query --json`'s object, plus the ids and URLs the page needs."""
    out = hit_json(rank, found.hit)
    out["file_id"] = found.file_id
    out["thumbnail_url"] = f"/api/segments/{found.hit.segment_id}/thumbnail"
    out["content_url"] = f"/api/files/{found.file_id}/content"
    return out


# -------------------------------------------------------------------------------- embed


async def embed(request: Request) -> Response:
    svc = service(request)
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise HttpError(400, "the request body is not valid JSON") from None
        texts, modality = _text_request(body)
        results = await run_in_threadpool(embed_texts, svc, texts, modality)
        return JSONResponse({"results": [r.to_json() for r in results]})
    async with _form(request) as form:
        asked = form.get("modality")
        forced = asked if isinstance(asked, str) and asked else None
        with UploadFolder() as folder:
            uploads = [u for u in form.getlist("file") if isinstance(u, UploadFile)]
            if not uploads:
                raise HttpError(400, "nothing to embed", "send files as `file` or JSON texts")
            saved = [
                (await _save_upload(request, upload, folder), upload.filename or "upload")
                for upload in uploads
            ]
            results = await run_in_threadpool(embed_uploads, svc, saved, forced)
    return JSONResponse({"results": [r.to_json() for r in results]})


def _text_request(body: Any) -> tuple[list[str], str]:
    if not isinstance(body, dict):
        raise HttpError(400, 'the JSON body must be an object like {"texts": ["a dog"]}')
    texts, modality = body.get("texts"), body.get("modality", "image")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise HttpError(400, '"texts" must be a non-empty list of strings')
    if not isinstance(modality, str):
        raise HttpError(400, '"modality" must be a string such as "image"')
    return texts, modality


# ------------------------------------------------------------------------ files, status


async def status(request: Request) -> Response:
    """What `lbsearch status --json` prints (the first 100 failed files; `?all_failed=1` for all)."""
    every = request.query_params.get("all_failed", "") in ("1", "true", "yes")
    stats = await run_in_threadpool(service(request).stats, ALL if every else FAILED_SHOWN)
    return JSONResponse(status_json(stats))


async def file_content(request: Request) -> Response:
    record = await run_in_threadpool(service(request).file, request.path_params["file_id"])
    if record is None:
        raise HttpError(404, "no such file in the library")
    try:
        return await run_in_threadpool(file_response, record, request.headers.get("range"))
    except NotServable as error:
        raise HttpError(404, str(error), "run `lbsearch index` on its folder again") from None


async def thumbnail(request: Request) -> Response:
    svc = service(request)
    found = await run_in_threadpool(svc.segment, request.path_params["segment_id"])
    if found is None:
        raise HttpError(404, "no such segment in the library")
    size = request.query_params.get("size", str(DEFAULT_SIDE))
    if not size.isdigit():
        raise HttpError(400, f"size={size!r} is not a number of pixels")
    try:
        thumb = await run_in_threadpool(svc.thumbnails.get, found.file, found.segment, int(size))
    except ThumbnailError as error:
        raise HttpError(404, error.message, error.hint) from None
    headers = {"Cache-Control": "private, max-age=86400"}
    return Response(thumb.data, media_type=thumb.media_type, headers=headers)


# ------------------------------------------------------------------------------ uploads


class _form:
    """`async with _form(request) as form`: the multipart form, its spooled files closed after."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.form: FormData | None = None

    async def __aenter__(self) -> FormData:
        if not self.request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise HttpError(400, "send the request as multipart/form-data")
        limits = settings(self.request)
        self.form = await self.request.form(
            max_files=limits.max_upload_files, max_fields=200, max_part_size=64 * 1024
        )
        return self.form

    async def __aexit__(self, *exc: object) -> None:
        if self.form is not None:
            await self.form.close()


async def _save_uploads(
    request: Request, form: FormData, name: str, folder: UploadFolder
) -> list[Path]:
    uploads = [u for u in form.getlist(name) if isinstance(u, UploadFile)]
    return [await _save_upload(request, upload, folder) for upload in uploads]


async def _save_upload(request: Request, upload: UploadFile, folder: UploadFolder) -> Path:
    """Copy one upload into the request's private folder, refusing it past the size cap."""
    cap = settings(request).max_upload_bytes
    path = folder.new_file(upload.filename)
    written = 0
    with path.open("wb") as out:
        while chunk := await upload.read(_UPLOAD_CHUNK):
            written += len(chunk)
            if written > cap:
                raise HttpError(413, f"{upload.filename}: larger than {cap} bytes", "send less")
            out.write(chunk)
    if written == 0:
        raise HttpError(400, f"{upload.filename or 'an upload'}: the file is empty")
    return path
