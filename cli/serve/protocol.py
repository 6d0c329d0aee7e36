"""uvicorn's HTTP/1.1 protocol (h11) with a deadline on each request's head and a limit on the
connections one client address may hold open.

uvicorn times out idle keep-alive connections but not a client that connects, or starts a
request, and then sends its header lines slowly or not at all: enough such connections would use
up the server's connection limit. Here each request's head must be complete within
`head_timeout_s` of the connection opening (or of the previous response); otherwise the
connection is closed. Request bodies have their own limit (app.BodyLimit).

A client address past `per_client` open connections gets 503 and is closed at once, so one
machine on the LAN cannot take every connection the server allows (uvicorn's
`limit_concurrency`) from the others.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 5\r\nconnection: close\r\ncontent-length: 57\r\n\r\n"
    b'{"error": "too many connections from this address, wait"}'
)


def protocol_with_head_deadline(
    head_timeout_s: float, per_client: int = 0
) -> type[asyncio.Protocol]:
    open_per_client: Counter[str] = Counter()  # the event loop's thread only

    class HeadDeadlineProtocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _counted: str | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            address = self.client[0] if self.client else ""
            if per_client and open_per_client[address] >= per_client:
                transport.write(_BUSY)
                transport.close()
                return
            open_per_client[address] += 1
            self._counted = address
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            if self._counted is not None:
                open_per_client[self._counted] -= 1
                if open_per_client[self._counted] <= 0:
                    del open_per_client[self._counted]
                self._counted = None
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            waiting_after = self.cycle  # a new request replaces it once its head is read
            self._deadline = self.loop.call_later(head_timeout_s, self._expire, waiting_after)

        def _expire(self, waiting_after: object) -> None:
            if self.cycle is waiting_after and not self.transport.is_closing():
                self.transport.close()

    return HeadDeadlineProtocol
