"""The decode pool's wake-up: a pipe its dispatcher waits on beside the workers' pipes."""

from __future__ import annotations

import threading
from multiprocessing.connection import Pipe


class Bell:
    """Wakes the dispatcher from its wait the moment there is something to do: the consumer
    took a result (room again) or a job arrived. Without it the dispatcher notices only at its
    next poll, which cost tens of milliseconds per file when results wait for the consumer."""

    def __init__(self) -> None:
        self.reader, self._writer = Pipe(duplex=False)
        self._armed = threading.Event()
        self._lock = threading.Lock()  # ring (any thread) never writes to a closed pipe
        self._open = True

    def arm(self) -> None:
        """The dispatcher is about to look at its state and wait: ring if anything changes."""
        self._armed.set()

    def ring(self) -> None:
        if not self._armed.is_set():
            return  # already rung since the dispatcher last looked
        with self._lock:
            if self._open:
                self._armed.clear()
                self._writer.send_bytes(b"")

    def silence(self) -> None:
        while self.reader.poll():
            self.reader.recv_bytes()

    def close(self) -> None:
        with self._lock:
            self._open = False
            self.reader.close()
            self._writer.close()
