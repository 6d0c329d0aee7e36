"""The catalog's database plumbing: the engine and its pragmas, transactions, schema checks.

`CatalogBase` opens the database and gives the query mixins their transactions: `_read()` is one
deferred read transaction (one consistent snapshot; in WAL mode it never waits for a writer),
`_write()` one `BEGIN IMMEDIATE` transaction (SQLite's write lock taken up front, so two writers
queue on busy_timeout instead of failing half-way). Inside `snapshot()` every read of the
thread joins one read transaction (a search's look-ups). SQLite errors become `CatalogError`s.
"""

from __future__ import annotations

import glob
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, exc, select
from sqlalchemy.pool import QueuePool

from . import schema
from .records import CatalogError
from .schema import meta
from .shape import SEARCH_INDEXES, has_index, translate_error


class CatalogMigrationNeeded(CatalogError):
    """The catalog has an older schema and this open was not allowed to migrate it."""


class CatalogBase:
    """An open catalog database: lifecycle, transactions and whole-database maintenance."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        migrate: bool = True,
        busy_timeout_s: float = 30.0,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise CatalogError(
                f"{self.path}: no catalog database here",
                "run `lbsearch index FOLDER` to create the library, or point --library at it",
            )
        self._busy_timeout_s = busy_timeout_s
        self.read_only = read_only
        self._pinned = threading.local()  # .conn: the thread's open snapshot, if any
        if create and not self.path.exists():
            _create_in_place(self.path, busy_timeout_s)
        mode = "ro" if read_only else "rw"
        self._engine = _make_engine(self.path, mode=mode, busy_timeout_s=busy_timeout_s)
        try:
            if read_only and not _readable_in_place(self._engine):
                # a read-only folder: SQLite cannot create the WAL index beside the database,
                # so read it as an immutable file (nobody can be writing where we cannot)
                self._engine.dispose()
                self._engine = _make_engine(self.path, mode="immutable", busy_timeout_s=0)
            self.schema_version = self._prepare_schema(
                create=create, migrate=migrate and not read_only
            )
            self.library_id = self._meta("library_id")
        except BaseException:
            self._engine.dispose()
            raise

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read_transaction(self) -> AbstractContextManager[Connection]:
        """A new read transaction, for `snapshot()` (CatalogLookups) to pin."""
        return self._read()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        pinned: Connection | None = getattr(self._pinned, "conn", None)
        if pinned is not None:
            with self._errors():
                yield pinned
            return
        with self._errors(), self._engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _raw_read(self) -> Iterator[sqlite3.Connection]:
        """`_read()`'s transaction as the driver's connection: plain SQL without SQLAlchemy's
        statement and row machinery, for the look-ups every search makes (a 20-row read cost
        0.7 ms through it, 0.2 ms plain)."""
        with self._read() as conn:
            driver: Any = conn.connection.driver_connection
            yield driver

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self.read_only:
            raise CatalogError(
                f"{self.path}: this catalog was opened read-only",
                "open the library for writing (`lbsearch index`); this is a bug if it shows",
            )
        with self._errors(), self._engine.connect() as conn:
            conn.execution_options(lbsearch_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    def _errors(self) -> AbstractContextManager[None]:
        return _translating(self.path, self._busy_timeout_s)

    def _prepare_schema(self, *, create: bool, migrate: bool) -> int:
        with self._errors():
            fairy = self._engine.raw_connection()  # autocommit: journal_mode needs no transaction
            raw: Any = fairy.driver_connection
            try:
                version = int(raw.execute("PRAGMA user_version").fetchone()[0])
                if version == schema.SCHEMA_VERSION:
                    return version
                tables = int(raw.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
                if self.read_only and version < schema.SCHEMA_VERSION and version:
                    raise CatalogError(
                        f"{self.path}: catalog schema v{version} needs an upgrade to "
                        f"v{schema.SCHEMA_VERSION}, and the library is read-only",
                        "open it once with write access (any lbsearch command), or use the "
                        "lbsearch version that wrote it",
                    )
                _check_version(self.path, version, tables, create=create)
                if not migrate:
                    raise CatalogMigrationNeeded(
                        f"{self.path}: catalog schema v{version} needs an upgrade to "
                        f"v{schema.SCHEMA_VERSION}",
                        "run `lbsearch index`, or any command once no indexer is running",
                    )
                raw.execute("PRAGMA journal_mode=WAL")
            finally:
                fairy.close()
        with self._write() as conn:
            version = _user_version(conn)  # another process may have migrated meanwhile
            if version < schema.SCHEMA_VERSION:
                schema.migrate(conn, version)
        return schema.SCHEMA_VERSION

    def _meta(self, key: str) -> str:
        with self._read() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        if value is None:
            raise CatalogError(f"{self.path}: catalog has no {key!r}", "the file is damaged")
        return str(value)

    def integrity_check(self) -> list[str]:
        """SQLite's integrity and foreign-key checks: [] when the database is sound."""
        with self._read() as conn:
            rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check")]
            problems = [] if rows == ["ok"] else rows
            fk = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        return problems + [f"foreign key: {tuple(r)}" for r in fk]

    def add_search_indexes(self) -> list[str]:
        """Build the covering indices a search reads through (`shape.SEARCH_INDEXES`) where
        they are missing; their names. A writer's call: building them reads the whole segments
        table once (0.7 s at 100k segments)."""
        with self._raw_read() as raw:
            missing = [name for name in SEARCH_INDEXES if not has_index(raw, name)]
        if missing:
            with self._write() as conn:
                for name in missing:
                    conn.exec_driver_sql(
                        f"CREATE INDEX IF NOT EXISTS {name} ON {SEARCH_INDEXES[name]}"
                    )
        return missing

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (end of an index run)."""
        if self.read_only:
            return
        with self._errors(), self._engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def _create_in_place(path: Path, busy_timeout_s: float) -> None:
    """Build a new catalog beside `path` and link it into place whole: a reader that opens the
    file while the first indexer starts sees either no catalog or a complete one, never an
    SQLite file still without its schema (it took that for a foreign file and stopped)."""
    _remove_abandoned_drafts(path)
    draft = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.new")
    _remove_database_files(draft)
    engine = _make_engine(draft, mode="rwc", busy_timeout_s=busy_timeout_s)
    try:
        with _translating(draft, busy_timeout_s):
            fairy = engine.raw_connection()  # autocommit: journal_mode needs no transaction
            raw: Any = fairy.driver_connection
            try:
                raw.execute("PRAGMA journal_mode=WAL")  # kept in the file
            finally:
                fairy.close()
            with engine.connect() as conn, conn.begin():
                schema.migrate(conn, 0)
        engine.dispose()  # the last connection folds the log into the file and removes it
        _publish(draft, path)
    finally:
        engine.dispose()
        _remove_database_files(draft)


def _publish(draft: Path, path: Path) -> None:
    """Put the finished draft at `path` unless another process published its own first."""
    try:
        os.link(draft, path)  # never replaces: a concurrent creator's catalog stays
    except FileExistsError:
        return
    except OSError:  # a filesystem without hard links: a rename, checked first
        if not path.exists():
            draft.replace(path)


def _remove_abandoned_drafts(path: Path) -> None:
    """Drafts of creators that died before publishing (killed at their first run)."""
    for draft in path.parent.glob(f"{glob.escape(path.name)}.*-*.new"):
        pid = draft.name[len(path.name) + 1 :].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            _remove_database_files(draft)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, someone else's
        return True
    return True


def _remove_database_files(database: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)


@contextmanager
def _translating(path: Path, busy_timeout_s: float) -> Iterator[None]:
    try:
        yield
    except exc.DBAPIError as err:
        raise translate_error(path, str(err.orig), busy_timeout_s) from err
    except sqlite3.Error as err:
        raise translate_error(path, str(err), busy_timeout_s) from err


def _readable_in_place(engine: Engine) -> bool:
    """Whether a read-only connection can read the database as it is (in WAL mode that needs
    the -shm file, which SQLite cannot create in a folder the user cannot write)."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
    except exc.DBAPIError:
        return False
    return True


def _make_engine(path: Path, *, mode: str, busy_timeout_s: float) -> Engine:
    """mode: rwc (create), rw, ro (read-only), or immutable (read-only, no locking at all)."""
    query = "mode=ro&immutable=1" if mode == "immutable" else f"mode={mode}"
    uri = f"file:{quote(str(path.absolute()))}?{query}"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(
            uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        if mode not in ("ro", "immutable"):
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -32768")
        return conn

    engine = create_engine("sqlite+pysqlite://", creator=connect, poolclass=QueuePool)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:  # pysqlite's own BEGIN handling is switched off
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('lbsearch_begin', '')}")

    return engine


def _user_version(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)


def _check_version(path: Path, version: int, tables: int, *, create: bool) -> None:
    if version > schema.SCHEMA_VERSION:
        raise CatalogError(
            f"{path}: catalog schema v{version} was written by a newer lbsearch "
            f"(this one knows up to v{schema.SCHEMA_VERSION})",
            "upgrade lbsearch, or use another library (--library DIR)",
        )
    if version == 0 and (tables or not create):
        raise CatalogError(
            f"{path}: not an lbsearch catalog (an SQLite file without its schema)",
            "point --library at an lbsearch library folder, or move this file away",
        )
