"""The processes behind a DecodePool: how workers start, how many, and cleaning up after them."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import LbsearchError

# What the forkserver imports once, so that each worker forks with it already loaded.
PRELOAD = ["lbsearch.media.pool", "lbsearch.media.decode", "torch", "av"]
# Folders or modules in the current directory that would stand in for what the workers import.
_SHADOWABLE = ("lbsearch", "torch", "av", "numpy", "PIL")
_ENV_LOCK = threading.Lock()


class PoolBrokenError(LbsearchError):
    """Decode workers cannot even start (a dependency missing or shadowed, an interpreter that
    cannot run them): no file can be decoded, so the run stops."""


def default_workers() -> int:
    """Half the CPUs (the encoder wants the rest), at least 1, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def start_context() -> Any:
    """forkserver where available: workers fork from a clean process that has already imported
    torch and PyAV (fast restarts after a timeout, no inherited threads); spawn elsewhere."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return mp.get_context("spawn")


@contextlib.contextmanager
def safe_start() -> Iterator[None]:
    """Around `Process.start()`: a Python process started meanwhile (the forkserver, or a spawned
    worker) never puts the current directory first on its sys.path.

    Both start as `python -c ...`, which puts the current directory ahead of site-packages, so a
    folder named `lbsearch` (the parent of a clone, a media folder) or `torch` there was imported
    instead of the installed package and every worker died. PYTHONSAFEPATH (Python 3.11) leaves
    it out; the workers then import from the parent's own sys.path, which multiprocessing hands
    them. (An interpreter run with -E ignores the variable; -I implies it.)
    """
    with _ENV_LOCK:
        before = os.environ.get("PYTHONSAFEPATH")
        os.environ["PYTHONSAFEPATH"] = "1"
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("PYTHONSAFEPATH", None)
            else:
                os.environ["PYTHONSAFEPATH"] = before


def broken_pool(detail: str) -> PoolBrokenError:
    """The error for workers that die before they are ready: what happened, then what to do."""
    package = Path(__file__).resolve().parents[1]  # the lbsearch package this process runs
    shadow = _shadowing_paths(package)
    check = f'`{sys.executable} -c "import lbsearch.media.decode"` from {Path.cwd()}'
    if shadow:
        hint = (
            f"{shadow[0]} in the current directory may be imported instead of the installed "
            f"package: run lbsearch from another directory (or rename it). Then check {check}"
        )
    else:
        hint = f"the worker's own error is printed above; check that {check} works"
    return PoolBrokenError(f"decode worker processes cannot start: {detail}", hint)


def _shadowing_paths(package: Path) -> list[Path]:
    """Entries of the current directory named like a module the workers import, other than
    the modules this process actually uses."""
    found = []
    for name in _SHADOWABLE:
        for candidate in (Path.cwd() / name, Path.cwd() / f"{name}.py"):
            if not candidate.exists():
                continue
            used = package if name == "lbsearch" else _module_folder(name)
            if used is None or candidate.resolve() != used:
                found.append(candidate)
    return found


def _module_folder(name: str) -> Path | None:
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    return Path(path).resolve().parent if path else None


def release_multiprocessing_files() -> None:
    """Stop the forkserver and remove the pymp-* folder multiprocessing made for its socket.

    multiprocessing removes that folder only when this process exits normally; a process killed
    later (kill -9, a crash) would leave it in the temp folder. Another pool started afterwards
    starts a new forkserver (and folder) as needed. These are multiprocessing internals, used
    defensively: if they change, nothing is removed and nothing breaks.
    """
    from multiprocessing import active_children, forkserver, util

    if active_children():  # another pool in this process (a server's) still forks from it
        return
    with contextlib.suppress(Exception):
        forkserver._forkserver._stop()  # type: ignore[attr-defined]
    registry = getattr(util, "_finalizer_registry", {})
    for key, finalizer in list(registry.items()):
        if getattr(finalizer, "_callback", None) is getattr(util, "_remove_temp_dir", None):
            with contextlib.suppress(Exception):
                finalizer()  # removes the folder and forgets it (the next use makes a new one)
            registry.pop(key, None)
