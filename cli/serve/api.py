"""The JSON API of `lbsearch serve`. Handlers are thin: parse, call the service, shape JSON.

Blocking work (search, thumbnails) runs in worker threads, and decoding in the service's shared
decode pool (uploads.py), so one slow request never holds up the event loop. Errors come back as
{"error": message, "hint": hint} with a fitting status: 400 bad input, 404 unknown or unservable
ids, 413 too large, 422 an upload that cannot be decoded, 503 busy (with Retry-After) or a model
or library that cannot be used now.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lbsearch.errors import MediaError
from lbsearch.search import QueryRequest
from lbsearch.search.shell import hit_json
from lbsearch.search.status import ALL, FAILED_SHOWN, status_json
from lbsearch.thumbnails import DEFAULT_SIDE, ThumbnailError

from .base import HttpError, ServeSettings, error_response, status_for
from .content import NotServable, file_response
from .embedding import embed_texts, embed_uploads
from .examples import Cancelled, Example
from .forms import UploadFolder, file_ids, read_request, to_query
from .uploads import cancellable, examples_of, save_upload, save_uploads, upload_slot

__all__ = ["HttpError", "error_response", "status_for"]

if TYPE_CHECKING:
    from .service import Found, SearchService

log = logging.getLogger("lbsearch.serve")


T = TypeVar("T")


async def _blocking(request: Request, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` in a worker thread, at most `CATALOG_THREADS` at once: each may hold a
    catalog connection, and a burst (a page of thumbnails) must queue here rather than time
    out waiting for one of the catalog's 15."""
    limiter: anyio.CapacityLimiter = request.app.state.catalog_limiter
    return await anyio.to_thread.run_sync(functools.partial(work, *args), limiter=limiter)


def service(request: Request) -> SearchService:
    return request.app.state.service


def settings(request: Request) -> ServeSettings:
    return request.app.state.settings


# ------------------------------------------------------------------------------- search


async def search_get(request: Request) -> Response:
    return await _search(request, read_request(request.query_params), request.query_params, {})


async def search_post(request: Request) -> Response:
    async with upload_slot(request), _form(request) as form:
        with UploadFolder() as folder:
            like = await save_uploads(request, form, "like", folder)
            not_like = await save_uploads(request, form, "not_like", folder)
            asked = read_request(form, like, not_like)  # bad fields: 400 before any decoding
            try:
                examples = await examples_of(request, service(request), like + not_like)
                return await _search(request, asked, form, examples)
            except MediaError as error:  # name the upload as sent, not its temporary path
                shown = folder.shown_name(error.path)
                raise HttpError(422, f"{shown}: {error.detail}", error.hint) from None
            except Cancelled:
                return Response(status_code=499)  # nobody reads it: the client left


async def _search(
    request: Request, asked: QueryRequest, fields: Any, examples: dict[str, Example]
) -> Response:
    svc = service(request)
    chosen = {name: file_ids(fields, name) for name in ("like_id", "not_like_id")}
    if chosen["like_id"] or chosen["not_like_id"]:
        examples = {**examples}
        paths: dict[str, list[str]] = {}
        for name, ids in chosen.items():
            paths[name] = [
                await _blocking(request, _catalog_example, svc, file_id, examples)
                for file_id in ids
            ]
        asked = dataclasses.replace(
            asked,
            like=asked.like + tuple(paths["like_id"]),
            not_like=asked.not_like + tuple(paths["not_like_id"]),
        )
    query = to_query(asked)
    found = await _blocking(request, svc.search, query, examples)
    return JSONResponse({"results": [result_json(rank, f) for rank, f in enumerate(found, 1)]})


def _catalog_example(svc: SearchService, file_id: int, examples: dict[str, Example]) -> str:
    """`like_id`/`not_like_id` ("similar" on a result): a served file's stored vectors."""
    try:
        path, example = svc.catalog_example(file_id)
    except NotServable as error:
        log.info("not using file %d as an example: %s", file_id, error.message)
        raise HttpError(404, f"no file with id {file_id} in the library") from None
    examples[path] = dataclasses.replace(example, content_hash=None)  # left out by its path
    return path


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
        body = await request.json()  # bad or too deep JSON: 400 (app's handlers)
        texts, modality = _text_request(body, settings(request).max_texts)
        results = await _blocking(request, embed_texts, svc, texts, modality)
        return JSONResponse({"results": [r.to_json() for r in results]})
    async with upload_slot(request), _form(request) as form:
        asked = form.get("modality")
        forced = asked if isinstance(asked, str) and asked else None
        with UploadFolder() as folder:
            uploads = [u for u in form.getlist("file") if isinstance(u, UploadFile)]
            if not uploads:
                raise HttpError(400, "nothing to embed", "send files as `file` or JSON texts")
            saved = [
                (await save_upload(request, upload, folder), upload.filename or "upload")
                for upload in uploads
            ]
            try:
                results = await cancellable(
                    request, lambda cancelled: embed_uploads(svc, saved, forced, cancelled)
                )
            except Cancelled:
                return Response(status_code=499)
    return JSONResponse({"results": [r.to_json() for r in results]})


def _text_request(body: Any, max_texts: int) -> tuple[list[str], str]:
    if not isinstance(body, dict):
        raise HttpError(400, 'the JSON body must be an object like {"texts": ["a dog"]}')
    texts, modality = body.get("texts"), body.get("modality", "image")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise HttpError(400, '"texts" must be a non-empty list of strings')
    if len(texts) > max_texts:
        raise HttpError(
            400, f"{len(texts)} texts in one request; at most {max_texts}", "send them in parts"
        )
    if not isinstance(modality, str):
        raise HttpError(400, '"modality" must be a string such as "image"')
    return texts, modality


# ------------------------------------------------------------------------ files, status


async def status(request: Request) -> Response:
    """What `lbsearch status --json` prints (the first 100 failed files; `?all_failed=1` for all)."""
    every = request.query_params.get("all_failed", "") in ("1", "true", "yes")
    stats = await _blocking(request, service(request).stats, ALL if every else FAILED_SHOWN)
    return JSONResponse(status_json(stats, service(request).config.relevance))


async def file_content(request: Request) -> Response:
    svc = service(request)
    record = await _blocking(request, svc.file, _id(request, "file_id"))
    if record is None:
        raise HttpError(404, NOT_FOUND)
    try:
        return await _blocking(
            request, file_response, record, svc.roots(), request.headers.get("range")
        )
    except NotServable as error:  # the reason stays in the log: a client learns nothing more
        log.info("not serving file %d: %s", record.id, error.message)
        raise HttpError(404, NOT_FOUND) from None


async def thumbnail(request: Request) -> Response:
    svc = service(request)
    found = await _blocking(request, svc.segment, _id(request, "segment_id"))
    if found is None:
        raise HttpError(404, NOT_FOUND)
    side = _side(request.query_params.get("size"))
    try:
        thumb = await _blocking(
            request, svc.thumbnails.get, found.file, found.segment, svc.roots(), side
        )
    except ThumbnailError as error:
        log.info("no thumbnail for segment %d: %s", found.segment.id, error.message)
        raise HttpError(404, NOT_FOUND) from None
    headers = {
        "Cache-Control": "private, max-age=86400",
        "Cross-Origin-Resource-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(thumb.data, media_type=thumb.media_type, headers=headers)


NOT_FOUND = "no such file in the library"
_MAX_ID = 2**63 - 1  # SQLite's largest integer


def _id(request: Request, name: str) -> int:
    """A path id; one past SQLite's integers is no row (404), not an overflow (500)."""
    value = request.path_params[name]
    if not 0 < value <= _MAX_ID:
        raise HttpError(404, NOT_FOUND)
    return int(value)


def _side(asked: str | None) -> int:
    """?size=N: ASCII digits only (`isdigit` accepts "²"), at most 5 of them."""
    if asked is None:
        return DEFAULT_SIDE
    if not (asked.isascii() and asked.isdigit() and len(asked) <= 5) or int(asked) == 0:
        raise HttpError(400, f"size={asked[:20]!r} is not a number of pixels", "e.g. size=320")
    return int(asked)


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
