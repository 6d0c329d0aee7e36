"""Who may use the service, and from which pages.

- Bound to a loopback address without a token, anyone on this machine may use it (like any local
  tool), but only under the names 127.0.0.1, localhost or [::1] (with the listening port or
  none): a Host header naming anything else is refused, so a web page cannot reach the service
  through DNS rebinding.
- With `--token` (required for any other address), every request needs `Authorization: Bearer
  TOKEN` (the scheme in any case) or a session cookie. A browser gets a cookie from the one-time
  URL printed at start (`/login?code=...`, usable once) or from `/login?token=TOKEN`; each login
  gets its own random session, which expires after `[serve] session_hours` (HttpOnly,
  SameSite=Strict, Secure under TLS).
- Always: a request whose `Origin` is not exactly this service (scheme, host and port) is
  refused, and so is one a browser marks `Sec-Fetch-Site: cross-site` or `same-site`, on every
  route but the page itself (`/`): another page the user opens can neither run searches nor embed
  thumbnails and media (which would tell it what the library holds). No CORS headers are ever
  sent.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import threading
import time
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from lbsearch.errors import UsageError

from .base import error_response

COOKIE = "lbsearch_session"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
MIN_TOKEN = 16
MAX_SESSIONS = 1000
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$")
_ORIGIN = re.compile(r"^(https?)://([^/?#@]+)$")
_OPEN_TO_OTHER_SITES = ("/",)  # the page: a link from elsewhere may open it


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def generate_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


def check_binding(host: str, token: str | None) -> None:
    """UsageError unless `host` is a loopback address or a token protects the service."""
    if not is_loopback(host) and not token:
        raise UsageError(
            f"--host {host} would let other machines reach your library without a password",
            "add --token generate (or --token SECRET; clients send `Authorization: Bearer "
            "SECRET`), or keep the default --host 127.0.0.1",
        )
    if token is not None and sum(not c.isspace() for c in token) < MIN_TOKEN:
        raise UsageError(
            f"the --token has fewer than {MIN_TOKEN} non-blank characters (it is shorter than "
            "a guessable password should be)",
            "use --token generate to have a strong one made and printed",
        )


@dataclass
class Access:
    token: str | None
    loopback_only: bool
    session_s: float = 24 * 3600.0
    tls: bool = False
    port: int = 0  # the listening port, once bound (0: not checked)
    login_code: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    _code_used: bool = False
    _sessions: dict[str, float] = field(default_factory=dict)  # session -> expiry (monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allowed(self, request: Request) -> bool:
        if self.token is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given.strip() and _same(given.strip(), self.token):
            return True
        return self.session_valid(request.cookies.get(COOKIE, ""))

    def session_valid(self, session: str) -> bool:
        if not session:
            return False
        with self._lock:
            expiry = self._sessions.get(session)
            if expiry is None:
                return False
            if expiry < time.monotonic():
                del self._sessions[session]
                return False
            return True

    def new_session(self) -> str:
        session = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._sessions = {s: e for s, e in self._sessions.items() if e > now}
            while len(self._sessions) >= MAX_SESSIONS:  # the oldest login goes first
                del self._sessions[next(iter(self._sessions))]
            self._sessions[session] = now + self.session_s
        return session

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
        response.set_cookie(
            COOKIE,
            self.new_session(),
            max_age=int(self.session_s),
            httponly=True,
            samesite="strict",
            secure=self.tls,
        )
        return response


class AccessMiddleware:
    """Host, Origin and Sec-Fetch-Site checks, then the token; /login is the one door without a
    token."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(Request(scope))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        if not self._host_ok(host):
            return error_response(403, f"this service does not answer to {host[:100]!r}")
        origin = request.headers.get("origin")
        if origin is not None and not self._same_origin(origin, host):
            return error_response(403, "requests from other web sites are not allowed")
        site = request.headers.get("sec-fetch-site", "").lower()
        if site in ("cross-site", "same-site") and request.url.path not in _OPEN_TO_OTHER_SITES:
            return error_response(403, "requests from other web sites are not allowed")
        if request.url.path == "/login" or self.access.allowed(request):
            return None
        return error_response(
            401, "a token is needed", "send `Authorization: Bearer TOKEN` or open the login URL"
        )

    def _host_ok(self, host: str) -> bool:
        parsed = parse_host(host)
        if parsed is None:
            return False
        name, port = parsed
        if port is not None and self.access.port and port != self.access.port:
            return False
        return not self.access.loopback_only or name.lower() in LOOPBACK_NAMES

    def _same_origin(self, origin: str, host: str) -> bool:
        match = _ORIGIN.match(origin)
        if match is None:  # "null", a path, credentials: never this service
            return False
        scheme, where = match.groups()
        return scheme == ("https" if self.access.tls else "http") and _same_host(where, host)


def parse_host(host: str) -> tuple[str, int | None] | None:
    """(name, port) of a Host header, or None unless it is exactly `name[:port]` (a bracketed
    IPv6 address counts only if it parses)."""
    match = _HOST.match(host)
    if match is None:
        return None
    name, port = match.group(1), match.group(2)
    if name.startswith("["):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            return None
    number = int(port) if port is not None else None
    if number is not None and not 0 < number < 65536:
        return None
    return name, number


def _same_host(a: str, b: str) -> bool:
    first, second = parse_host(a), parse_host(b)
    return first is not None and second is not None and _norm(first) == _norm(second)


def _norm(parsed: tuple[str, int | None]) -> tuple[str, int | None]:
    return parsed[0].lower(), parsed[1]


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
