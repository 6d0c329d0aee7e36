"""What the driver checks in the results coming back from the cluster."""

from __future__ import annotations

import os
from pathlib import Path

from .rows import Embedded
from .stage import not_shared


def check_seen(done: Embedded) -> None:
    """A worker that cannot find or read a file this machine reads is not on the shared mount."""
    error = done.error
    if error is None or error.reason not in ("not_found", "unreadable"):
        return
    path = Path(done.job.path)
    if path.is_file() and os.access(path, os.R_OK):
        raise not_shared(done.job.path, done.node or "?", f"{error.reason}: {error.detail}")
