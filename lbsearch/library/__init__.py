"""The library folder: where it is, the writer lock, and its catalog and vectors opened together.

A library is one folder:

    catalog.sqlite     the source of truth (files, segments with their vectors, models)
    vectors/*.faiss    one search index per modality, derived from the catalog
    lock               held (flock) by the one process allowed to write

Location, first match wins: the caller's `--library DIR`, $LBSEARCH_HOME, config
`[library] path`, the platform's user data folder. Writers (`lbsearch index`) take the lock;
readers (`query`, `status`, a server) never take it: the catalog is in WAL mode, so a reader's
transaction sees a consistent snapshot while a writer commits, and a reader that finds an index
behind the catalog (a crash, or an indexer still running) repairs it in memory only; the next
writer to open the library saves the repair. Index files are replaced atomically, so a reader
never loads half a file; a long-lived reader calls `Library.refresh()` to pick up later commits. The one exception: a catalog from an older
lbsearch is migrated by the first process that opens it, under the lock if it is free.
"""

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:
    from .core import Library, LibraryStats
    from .events import IndexAction, IndexCheck, IndexEvent, IndexInfo
    from .folder import (
        CATALOG_NAME,
        LIBRARY_ENV,
        LOCK_NAME,
        VECTORS_DIR,
        LibraryError,
        LibraryLocation,
        LibraryLockedError,
        locate_library,
    )
    from .lock import LockHolder, WriterLock

# Loaded on first use: finding the library folder (a cold `lbsearch query` a server answers)
# does not load the catalog and the indices.
_WHERE = {
    "Library": ".core",
    "LibraryStats": ".core",
    "IndexAction": ".events",
    "IndexCheck": ".events",
    "IndexEvent": ".events",
    "IndexInfo": ".events",
    "CATALOG_NAME": ".folder",
    "LIBRARY_ENV": ".folder",
    "LOCK_NAME": ".folder",
    "VECTORS_DIR": ".folder",
    "LibraryError": ".folder",
    "LibraryLocation": ".folder",
    "LibraryLockedError": ".folder",
    "locate_library": ".folder",
    "LockHolder": ".lock",
    "WriterLock": ".lock",
}

__getattr__ = lazy_names(__name__, _WHERE)

__all__ = [
    "CATALOG_NAME",
    "LIBRARY_ENV",
    "LOCK_NAME",
    "VECTORS_DIR",
    "IndexAction",
    "IndexCheck",
    "IndexEvent",
    "IndexInfo",
    "Library",
    "LibraryError",
    "LibraryLocation",
    "LibraryLockedError",
    "LibraryStats",
    "LockHolder",
    "WriterLock",
    "locate_library",
]
