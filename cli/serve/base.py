"""What every part of the service shares: its limits and the JSON error shape.

A module of its own so that app.py, api.py and security.py each import it, never each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import JSONResponse

from lbsearch.config import ServeConfig
from lbsearch.errors import (
    CheckpointError,
    LbsearchError,
    MediaError,
    ModelNotAvailableError,
    UsageError,
)

_MB = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """The service's limits (from `[serve]` of config.toml; tests shrink them)."""

    max_upload_bytes: int = 256 * _MB  # a request's body in all (every upload in it together)
    max_upload_files: int = 16
    max_texts: int = 256  # texts in one /api/embed request
    body_timeout_s: float = 60.0  # a request body must be complete by then (after its head)
    head_timeout_s: float = 15.0  # a request's head (method, path, headers) must be in by then
    reload_poll_s: float = 1.0  # how often the catalog is checked for an indexer's commits
    max_connections: int = 512
    max_client_connections: int = 128
    max_jobs: int = 8  # uploads and embeddings queued or running
    session_s: float = 24 * 3600.0

    @classmethod
    def from_config(cls, serve: ServeConfig) -> ServeSettings:
        per_client = serve.max_client_connections or max(1, serve.max_connections // 4)
        return cls(
            max_upload_bytes=serve.max_upload_mb * _MB,
            body_timeout_s=serve.body_timeout_s,
            max_connections=serve.max_connections,
            max_client_connections=per_client,
            max_jobs=serve.max_jobs,
            session_s=serve.session_hours * 3600.0,
        )


RETRY_AFTER_S = 5


class HttpError(Exception):
    def __init__(self, status: int, message: str, hint: str = "", retry_after: int = 0) -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint
        self.retry_after = retry_after


def error_response(status: int, message: str, hint: str = "", retry_after: int = 0) -> JSONResponse:
    body = {"error": message, **({"hint": hint} if hint else {})}
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse(body, status_code=status, headers=headers)


def status_for(error: LbsearchError) -> int:
    from lbsearch.media.indexed import NotServable
    from lbsearch.media.shared_pool import PoolBusy

    if isinstance(error, PoolBusy):
        return 503
    if isinstance(error, NotServable):
        return 404
    if isinstance(error, UsageError):
        return 400
    if isinstance(error, MediaError):
        return 422
    if isinstance(error, ModelNotAvailableError | CheckpointError):
        return 503
    return 500
