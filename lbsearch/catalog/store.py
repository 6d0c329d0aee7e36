"""The catalog: one SQLite database (WAL mode) through SQLAlchemy Core.

Transactions: every read method runs in one deferred read transaction, so it sees one consistent
snapshot and, in WAL mode, never waits for a writer. Every write method runs in one
`BEGIN IMMEDIATE` transaction (it takes SQLite's write lock up front, so two writers queue on
busy_timeout instead of failing half-way). The library's writer lock keeps indexers apart; these
transactions keep a crash from leaving half a batch.

`Catalog` is assembled from one part per concern: `engine` (opening, pragmas, transactions,
schema checks), `reads` (files, modalities, vectors, search filters), `lookups` (what
every search reads, in plain SQL), `writes` (batches, deletions,
models per modality, with `deltas` for the vector indices), `stats` (runs, status) and
`folders` (offline folders, counts under a path).
"""

from __future__ import annotations

from .engine import CatalogMigrationNeeded
from .lookups import CatalogLookups
from .reads import CatalogReads
from .shadow import CatalogShadow
from .stats import CatalogRuns
from .writes import CatalogWrites

__all__ = ["Catalog", "CatalogMigrationNeeded"]


class Catalog(CatalogReads, CatalogLookups, CatalogWrites, CatalogRuns, CatalogShadow):
    """The library's source of truth: files, their segments and vectors, models per modality.

    Catalog(path, *, create=False, migrate=True, busy_timeout_s=30.0) opens the database (see
    `CatalogBase`); use it as a context manager or call close().
    """
