"""The ASGI app of `lbsearch serve`: routes, the static page, and the guards around them.

Starlette (not FastAPI): the API is a handful of routes whose input is parsed by the core's own
query functions, so FastAPI's pydantic models would be a second description of the same fields
and a large dependency for nothing; uvicorn serves it.

Guards, outermost first: one log line per request on stderr; a request body limit (declared and
counted) and a time limit on reading it, so a slow or broken client only ever holds its own
connection; the access check (see `security`); then the routes. No CORS headers are ever sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lbsearch.errors import LbsearchError

from . import api, clips
from .base import RETRY_AFTER_S, HttpError, ServeSettings, error_response, status_for
from .security import Access, AccessMiddleware

__all__ = ["ServeSettings", "build_app", "configure_logging"]

if TYPE_CHECKING:
    from .service import SearchService

STATIC = Path(__file__).parent / "static"
CATALOG_THREADS = 10  # fewer than the catalog's connection pool (5 + 10 overflow)
access_log = logging.getLogger("lbsearch.serve.access")


def build_app(service: SearchService, access: Access, settings: ServeSettings) -> Starlette:
    routes = [
        Route("/", _index),
        Route("/login", access.login),
        Route("/api/search", api.search_get, methods=["GET"]),
        Route("/api/search", api.search_post, methods=["POST"]),
        Route("/api/embed", api.embed, methods=["POST"]),
        Route("/api/status", api.status),
        Route("/api/files/{file_id:int}/content", api.file_content),
        Route("/api/files/{file_id:int}/clip", clips.clip),
        Route("/api/segments/{segment_id:int}/thumbnail", api.thumbnail),
        Mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="static"),
    ]
    handlers: dict[Any, Any] = {
        HttpError: _http_error,
        RecursionError: _too_deep,
        json.JSONDecodeError: _bad_json,
        LbsearchError: _lbsearch_error,
        HTTPException: _starlette_error,
        Exception: _unexpected_error,
    }
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.service = service
    app.state.settings = settings
    app.state.access = access
    app.state.catalog_limiter = anyio.CapacityLimiter(CATALOG_THREADS)
    app.state.uploads = 0  # upload requests being handled (uploads.upload_slot)
    app.add_middleware(AccessMiddleware, access=access)
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_upload_bytes, timeout_s=settings.body_timeout_s
    )
    app.add_middleware(AccessLog)
    return app


# The page loads its own script and style only; media and thumbnails come from this service;
# no other page may frame it.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": PAGE_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def _index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HttpError)
    return error_response(error.status, error.message, error.hint, error.retry_after)


async def _too_deep(request: Request, error: Exception) -> Response:
    return error_response(400, "the request is nested too deeply", "send a flat JSON object")


async def _bad_json(request: Request, error: Exception) -> Response:
    return error_response(400, "the request body is not valid JSON")


async def _lbsearch_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, LbsearchError)
    status = status_for(error)
    if status == 500:
        access_log.error("%s %s failed: %s", request.method, request.url.path, error)
    retry = RETRY_AFTER_S if status == 503 else 0
    return error_response(status, error.message, error.hint, retry)


async def _starlette_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    messages = {404: "not found", 405: "method not allowed"}
    return error_response(error.status_code, messages.get(error.status_code, error.detail))


async def _unexpected_error(request: Request, error: Exception) -> Response:
    access_log.exception("%s %s failed", request.method, request.url.path)
    return error_response(500, f"internal error: {type(error).__name__}")


class BodyLimit:
    """413 for a body declared or found larger than `max_bytes` (counted as it arrives, so a
    multipart upload is cut off at the limit, not spooled first); 408 for one not complete
    `timeout_s` after the request began, however it trickles. Once the body is in, `receive`
    passes through untouched: a response (a video streamed to a slow client) has no limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (
            not declared.isdigit() or len(declared) > 18 or int(declared) > self.max_bytes
        ):
            await error_response(413, "the request is too large")(scope, receive, send)
            return
        deadline = time.monotonic() + self.timeout_s
        seen, complete = 0, False

        async def limited() -> Message:
            nonlocal seen, complete
            if complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise HttpError(408, "the request body did not arrive in time") from None
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HttpError(413, "the request is too large")
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, limited, send)


class AccessLog:
    """One line per request on stderr: method, path (no query: it may hold words or a token),
    status, bytes sent and milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, sent = 500, 0

        async def counting(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            client = scope.get("client") or ("-", 0)
            access_log.info(
                "%s %s %s %d %d B %.1f ms",
                client[0],
                scope["method"],
                scope["path"],
                status,
                sent,
                elapsed,
            )


def configure_logging() -> None:
    """Plain lines on stderr for the access log and the service's own messages."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    for name in ("lbsearch.serve", "lbsearch.serve.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
