"""The library folder: what it holds, where it is, and its errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..config import LibraryConfig
from ..errors import LbsearchError

LIBRARY_ENV = "LBSEARCH_HOME"
CATALOG_NAME = "catalog.sqlite"
VECTORS_DIR = "vectors"
LOCK_NAME = "lock"
_KNOWN_ENTRIES = {
    CATALOG_NAME,
    f"{CATALOG_NAME}-wal",
    f"{CATALOG_NAME}-shm",
    VECTORS_DIR,
    LOCK_NAME,
    "cache",
    "config.toml",
}


class LibraryError(LbsearchError):
    """The library folder cannot be found, created or used."""


class LibraryLockedError(LibraryError):
    """Another process holds the library's writer lock."""


class LibraryReadOnlyError(LibraryError):
    """The library folder (or its catalog) cannot be written by this user."""


def is_writable(root: Path) -> bool:
    """Whether this user can change the library at `root`: the folder and, where they exist,
    the catalog, its WAL files and the lock file (access(2) asks the file system, so a
    read-only mount counts too)."""
    entries = [root] + [
        root / name
        for name in (CATALOG_NAME, f"{CATALOG_NAME}-wal", f"{CATALOG_NAME}-shm", LOCK_NAME)
    ]
    return all(os.access(p, os.W_OK) for p in entries if p == root or p.exists())


def refuse_read_only(root: Path, where: LibraryLocation) -> None:
    if not is_writable(root):
        raise LibraryReadOnlyError(
            f"the library {root} (from {where.source}) is read-only for this user",
            "`query`, `browse`, `status` and `serve` work on it as it is; to index or forget, "
            "use a library you can write (--library DIR) or ask its owner",
        )


@dataclass(frozen=True)
class LibraryLocation:
    """Where the library is and which setting chose it (for messages and `lbsearch status`)."""

    path: Path
    source: str  # "--library", "$LBSEARCH_HOME", "config [library] path", "default"


def locate_library(
    explicit: str | os.PathLike[str] | None = None, config: LibraryConfig | None = None
) -> LibraryLocation:
    """--library DIR > $LBSEARCH_HOME > config [library] path > the user data folder."""
    if explicit is not None and str(explicit):
        chosen, source = str(explicit), "--library"
    elif os.environ.get(LIBRARY_ENV):
        chosen, source = os.environ[LIBRARY_ENV], f"${LIBRARY_ENV}"
    elif config is not None and config.path:
        chosen, source = config.path, "config [library] path"
    else:
        from platformdirs import user_data_dir

        chosen, source = user_data_dir("lbsearch"), "default"
    return LibraryLocation(Path(chosen).expanduser().absolute(), source)


def prepare_folder(where: LibraryLocation) -> Path:
    """Create the library folder if needed; refuse a file, or a folder holding other things."""
    root = where.path
    if root.exists() and not root.is_dir():
        raise LibraryError(
            f"library path {root} (from {where.source}) is a file, not a folder",
            "choose a folder for the library (--library DIR or $LBSEARCH_HOME)",
        )
    if root.is_dir() and not (root / CATALOG_NAME).exists():
        strangers = sorted(
            p.name for p in root.iterdir() if p.name not in _KNOWN_ENTRIES and p.name[0] != "."
        )
        if strangers:
            raise LibraryError(
                f"{root} (from {where.source}) is not an lbsearch library and not empty "
                f"(it holds {', '.join(strangers[:3])}{'...' if len(strangers) > 3 else ''})",
                "a library needs its own folder: choose a new or empty one with --library DIR",
            )
    try:
        (root / VECTORS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LibraryError(
            f"cannot create the library folder {root}: {err.strerror or err}",
            "check the path and its permissions, or choose another with --library DIR",
        ) from err
    return root
