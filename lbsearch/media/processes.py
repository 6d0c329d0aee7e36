"""The processes behind a DecodePool: how workers start, how many, and cleaning up after them."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from typing import Any


def default_workers() -> int:
    """Half the CPUs (the encoder wants the rest), at least 1, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def start_context() -> Any:
    """forkserver where available: workers fork from a clean process that has already imported
    torch and PyAV (fast restarts after a timeout, no inherited threads); spawn elsewhere."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["lbsearch.media.pool", "lbsearch.media.decode", "torch", "av"])
        return ctx
    return mp.get_context("spawn")


def release_multiprocessing_files() -> None:
    """Stop the forkserver and remove the pymp-* folder multiprocessing made for its socket.

    multiprocessing removes that folder only when this process exits normally; a process killed
    later (kill -9, a crash) would leave it in the temp folder. Another pool started afterwards
    starts a new forkserver (and folder) as needed. These are multiprocessing internals, used
    defensively: if they change, nothing is removed and nothing breaks.
    """
    from multiprocessing import forkserver, util

    with contextlib.suppress(Exception):
        forkserver._forkserver._stop()  # type: ignore[attr-defined]
    registry = getattr(util, "_finalizer_registry", {})
    for key, finalizer in list(registry.items()):
        if getattr(finalizer, "_callback", None) is getattr(util, "_remove_temp_dir", None):
            with contextlib.suppress(Exception):
                finalizer()  # removes the folder and forgets it (the next use makes a new one)
            registry.pop(key, None)
