"""The catalog's view of folders: which are offline, how many files lie under a path, forgetting.

A folder is offline when the last run that walked its root could not list it (missing, permission
denied, an I/O error, or empty while the catalog held files under it). Its files keep their rows
and vectors; search marks them. The next run that lists the folder brings it back online.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select

from .engine import CatalogBase
from .records import OfflineFolder
from .rows import enc
from .schema import files, offline


class CatalogFolders(CatalogBase):
    """Offline folders and path-based counts of `Catalog`."""

    def count_files(self, under: str) -> int:
        """Files whose path is `under` itself or inside the folder `under`."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).where(at_or_under(under))).scalar() or 0)

    def file_ids_at(self, paths: Sequence[str]) -> list[int]:
        """Ids of the files at, or inside folders at, any of `paths`."""
        if not paths:
            return []
        with self._read() as conn:
            stmt = select(files.c.id).where(or_(*(at_or_under(p) for p in paths)))
            return [int(i) for i in conn.execute(stmt.order_by(files.c.id)).scalars()]

    def roots(self) -> tuple[str, ...]:
        """The distinct roots the catalogued files were indexed from, sorted."""
        with self._read() as conn:
            rows = conn.execute(select(files.c.root).distinct().order_by(files.c.root)).scalars()
            return tuple(os.fsdecode(r) for r in rows)

    def offline_folders(self) -> tuple[OfflineFolder, ...]:
        """Every offline folder with the number of catalogued files under it, by path."""
        with self._read() as conn:
            rows = conn.execute(select(offline).order_by(offline.c.folder)).all()
            return tuple(
                OfflineFolder(
                    os.fsdecode(row.folder),
                    os.fsdecode(row.root),
                    row.reason,
                    row.since,
                    int(
                        conn.execute(
                            select(func.count()).where(at_or_under(os.fsdecode(row.folder)))
                        ).scalar()
                        or 0
                    ),
                )
                for row in rows
            )

    def set_offline(self, roots: Sequence[str], folders: Sequence[OfflineFolder]) -> None:
        """Replace the offline folders of the walked `roots` by `folders` (one transaction):
        folders of these roots that were listed this time are online again."""
        now = time.time()
        with self._write() as conn:
            known = {
                os.fsdecode(r.folder): r.since
                for r in conn.execute(select(offline.c.folder, offline.c.since))
            }
            for root in roots:  # every mark at or under a walked root is decided anew
                conn.execute(delete(offline).where(_offline_at_or_under(root)))
            for item in folders:
                conn.execute(
                    insert(offline)
                    .prefix_with("OR REPLACE")
                    .values(
                        folder=enc(item.folder),
                        root=enc(item.root),
                        reason=item.reason,
                        since=known.get(item.folder, now),  # offline since it was first seen so
                    )
                )

    def forget_offline(self, paths: Sequence[str]) -> None:
        """Drop offline marks at or under `paths` (their files are being forgotten)."""
        with self._write() as conn:
            for path in paths:
                conn.execute(delete(offline).where(_offline_at_or_under(path)))


def at_or_under(path: str) -> ColumnElement[bool]:
    """A file's path is `path`, or lies inside the folder `path` (a range on the path index)."""
    sep = os.sep.encode()
    base = enc(path).rstrip(sep) or sep
    inside = and_(files.c.path > base + sep, files.c.path < base + bytes([sep[0] + 1]))
    return or_(files.c.path == base, inside)


def _offline_at_or_under(path: str) -> ColumnElement[bool]:
    sep = os.sep.encode()
    base = enc(path).rstrip(sep) or sep
    inside = and_(offline.c.folder > base + sep, offline.c.folder < base + bytes([sep[0] + 1]))
    return or_(offline.c.folder == base, inside)
