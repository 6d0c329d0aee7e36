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
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lbsearch.errors import LbsearchError

from . import api
from .security import Access, AccessMiddleware

if TYPE_CHECKING:
    from .service import SearchService

STATIC = Path(__file__).parent / "static"
access_log = logging.getLogger("lbsearch.serve.access")


@dataclass(frozen=True)
class ServeSettings:
    max_upload_bytes: int = 256 * 1024 * 1024  # one uploaded file
    max_upload_files: int = 16
    max_body_bytes: int = 1024 * 1024 * 1024  # a whole request
    body_timeout_s: float = 60.0  # a request body must keep arriving
    head_timeout_s: float = 15.0  # a request's head (method, path, headers) must be in by then
    reload_poll_s: float = 1.0  # how often the catalog is checked for an indexer's commits


def build_app(service: SearchService, access: Access, settings: ServeSettings) -> Starlette:
    routes = [
        Route("/", _index),
        Route("/login", access.login),
        Route("/api/search", api.search_get, methods=["GET"]),
        Route("/api/search", api.search_post, methods=["POST"]),
        Route("/api/embed", api.embed, methods=["POST"]),
        Route("/api/status", api.status),
        Route("/api/files/{file_id:int}/content", api.file_content),
        Route("/api/segments/{segment_id:int}/thumbnail", api.thumbnail),
        Mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="static"),
    ]
    handlers: dict[Any, Any] = {
        api.HttpError: _http_error,
        LbsearchError: _lbsearch_error,
        HTTPException: _starlette_error,
        Exception: _unexpected_error,
    }
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.service = service
    app.state.settings = settings
    app.state.access = access
    app.add_middleware(AccessMiddleware, access=access)
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s
    )
    app.add_middleware(AccessLog)
    return app


async def _index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, api.HttpError)
    return api.error_response(error.status, error.message, error.hint)


async def _lbsearch_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, LbsearchError)
    status = api.status_for(error)
    if status == 500:
        access_log.error("%s %s failed: %s", request.method, request.url.path, error)
    return api.error_response(status, error.message, error.hint)


async def _starlette_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    messages = {404: "not found", 405: "method not allowed"}
    return api.error_response(error.status_code, messages.get(error.status_code, error.detail))


async def _unexpected_error(request: Request, error: Exception) -> Response:
    access_log.exception("%s %s failed", request.method, request.url.path)
    return api.error_response(500, f"internal error: {type(error).__name__}: {error}")


class BodyLimit:
    """413 for a body declared or found larger than `max_bytes`; 408 for one that stalls."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await api.error_response(413, "the request is too large")(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                raise api.HttpError(408, "the request body stopped arriving") from None
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise api.HttpError(413, "the request is too large")
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
