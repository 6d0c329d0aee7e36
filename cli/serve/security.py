"""Who may use the service, and from which pages.

- Bound to a loopback address without a token, anyone on this machine may use it (like any local
  tool), but only under the names 127.0.0.1, localhost or [::1]: a Host header naming anything
  else is refused, so a web page cannot reach the service through DNS rebinding.
- With `--token` (required for any other address), every request needs `Authorization: Bearer
  TOKEN` or the session cookie. A browser gets the cookie from the one-time URL printed at
  start (`/login?code=...`, usable once) or from `/login?token=TOKEN`.
- Always: a request with an `Origin` header naming another site is refused (no CORS headers are
  ever sent, so other sites cannot read answers; this also stops them from making the service
  do work through cross-site form posts).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from lbsearch.errors import UsageError

from .api import error_response

COOKIE = "lbsearch_session"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """UsageError unless `host` is a loopback address or a token protects the service."""
    if not is_loopback(host) and not token:
        raise UsageError(
            f"--host {host} would let other machines reach your library without a password",
            "add --token SECRET (clients send `Authorization: Bearer SECRET`), or keep the "
            "default --host 127.0.0.1",
        )
    if token is not None and len(token) < 16:
        raise UsageError(
            "the --token is shorter than 16 characters",
            "use a long random one, e.g. `openssl rand -hex 16`",
        )


@dataclass
class Access:
    token: str | None
    loopback_only: bool
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    login_code: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    _code_used: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allowed(self, request: Request) -> bool:
        if self.token is None:
            return True
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and _same(header[7:].strip(), self.token):
            return True
        return _same(request.cookies.get(COOKIE, ""), self.session)

    def take_code(self, code: str) -> bool:
        """True the first time the printed one-time code is presented, False after."""
        with self._lock:
            if self._code_used or not _same(code, self.login_code):
                return False
            self._code_used = True
            return True

    async def login(self, request: Request) -> Response:
        if self.token is None:
            return RedirectResponse("/", status_code=303)
        code, token = request.query_params.get("code", ""), request.query_params.get("token", "")
        if not (self.take_code(code) if code else token and _same(token, self.token)):
            return error_response(
                403,
                "this login link is not valid (or was used already)",
                "ask for a fresh link: restart `lbsearch serve`, or use ?token=",
            )
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, self.session, httponly=True, samesite="strict")
        return response


class AccessMiddleware:
    """Host and Origin checks, then the token; /login is the one door without a token."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        if self.access.loopback_only and _host_name(host) not in LOOPBACK_NAMES:
            return error_response(
                403, f"this service answers to 127.0.0.1 or localhost, not {host!r}"
            )
        origin = request.headers.get("origin")
        if origin is not None and _after_scheme(origin) != host:
            return error_response(403, "requests from other web sites are not allowed")
        if request.url.path == "/login" or self.access.allowed(request):
            return None
        return error_response(
            401, "a token is needed", "send `Authorization: Bearer TOKEN` or open the login URL"
        )


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _after_scheme(origin: str) -> str:
    return origin.split("://", 1)[-1]
