"""uvicorn's HTTP/1.1 protocol (h11) with a deadline on each request's head.

uvicorn times out idle keep-alive connections but not a client that connects, or starts a
request, and then sends its header lines slowly or not at all: enough such connections would use
up the server's connection limit. Here each request's head must be complete within
`head_timeout_s` of the connection opening (or of the previous response); otherwise the
connection is closed. Request bodies have their own limit (app.BodyLimit).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


def protocol_with_head_deadline(head_timeout_s: float) -> type[asyncio.Protocol]:
    class HeadDeadlineProtocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
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
