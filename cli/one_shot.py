"""A one-shot command's process: no cyclic garbage collection, and no interpreter teardown.

A cold `lbsearch query` is Python starting, imports, one text through the text tower and a
search; then Python's own teardown, a last full garbage collection over every object the imports
made and the freeing of each module, took 60 ms more (p50, 2 cores, 10k segments; 10 ms is left
once the process ends at once). The collections that run while the imports allocate are also
wasted on a process that frees everything at exit: about 20 ms more. A query closes its library
and writes its output before it returns, so nothing is lost by ending the process at once:
exit handlers still run, the standard streams are flushed, and the exit status is kept.

What such a process holds until it ends is left to the operating system too: freeing a full-size
text tower's ONNX Runtime session took 21-24 ms of the same query (`keep_until_exit`).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
from collections.abc import Iterator


class _Process:
    """What a one-shot process keeps, and the exit status its command ended with."""

    def __init__(self) -> None:
        self.active = False
        self.kept: list[object] = []  # left to the operating system to free
        self.status: int | None = None  # None: leave the exit to the interpreter

    def end(self) -> None:
        """Registered before anything else, so the last exit handler: the others have run."""
        if self.status is None:
            return
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe or stream: the interpreter reports it
            return
        os._exit(self.status)


_process = _Process()


def keep_until_exit(*objects: object) -> None:
    """Keep `objects` alive until a one-shot process ends (their memory goes back with the
    process, not one allocation at a time); elsewhere, as in tests, nothing is kept."""
    if _process.active:
        _process.kept.extend(objects)


@contextlib.contextmanager
def one_shot_process() -> Iterator[None]:
    """Around a command-line entry that ends by raising SystemExit (as typer's apps do): the
    process ends at once after it. Any other exception takes the usual way out, with its
    traceback. Only for the console entry point: it ends the calling process."""
    _process.active = True
    gc.disable()
    atexit.register(_process.end)
    try:
        yield
    except SystemExit as done:
        _process.status = exit_status(done.code)
        raise
    _process.status = 0


def exit_status(code: object) -> int:
    """The status the interpreter exits with for `SystemExit(code)` (a message: 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1
