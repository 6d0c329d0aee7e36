"""The catalog: one SQLite database (WAL mode) through SQLAlchemy Core.

Transactions: every read method runs in one deferred read transaction, so it sees one consistent
snapshot and, in WAL mode, never waits for a writer. Every write method runs in one
`BEGIN IMMEDIATE` transaction (it takes SQLite's write lock up front, so two writers queue on
busy_timeout instead of failing half-way). The library's writer lock keeps indexers apart; these
transactions keep a crash from leaving half a batch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    LargeBinary,
    Text,
    and_,
    cast,
    create_engine,
    delete,
    event,
    exc,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.pool import QueuePool

from ..types import Modality
from . import schema
from .records import (
    BatchResult,
    CatalogError,
    CatalogStats,
    FailedFile,
    FileRecord,
    FileStatus,
    IdSnapshot,
    IndexedFile,
    ModalityChange,
    ModalityDelta,
    ModalityState,
    ModalityStats,
    RootStats,
    RunCounts,
    RunRecord,
    SegmentFilter,
    SegmentHit,
    SegmentRecord,
    StoredSegment,
    VectorChunk,
)
from .schema import files, meta, modalities, runs, segments

_CHUNK = 500  # ids per IN (...) list
_FILE_COLUMNS = tuple(files.c)
_SEGMENT_COLUMNS = tuple(c.label(f"s_{c.name}") for c in segments.c if c.name != "vector")


class CatalogMigrationNeeded(CatalogError):
    """The catalog has an older schema and this open was not allowed to migrate it."""


class Catalog:
    """The library's source of truth: files, their segments and vectors, models per modality."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        migrate: bool = True,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise CatalogError(
                f"{self.path}: no catalog database here",
                "run `lbsearch index FOLDER` to create the library, or point --library at it",
            )
        self._busy_timeout_s = busy_timeout_s
        self._engine = _make_engine(self.path, create=create, busy_timeout_s=busy_timeout_s)
        try:
            self.schema_version = self._prepare_schema(create=create, migrate=migrate)
            self.library_id = self._meta("library_id")
        except BaseException:
            self._engine.dispose()
            raise

    # ----------------------------------------------------------------- lifecycle and plumbing

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._errors(), self._engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._errors(), self._engine.connect() as conn:
            conn.execution_options(lbsearch_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except exc.DBAPIError as err:
            raise _translate(self.path, str(err.orig), self._busy_timeout_s) from err
        except sqlite3.Error as err:
            raise _translate(self.path, str(err), self._busy_timeout_s) from err

    def _prepare_schema(self, *, create: bool, migrate: bool) -> int:
        with self._errors():
            fairy = self._engine.raw_connection()  # autocommit: journal_mode needs no transaction
            raw: Any = fairy.driver_connection
            try:
                version = int(raw.execute("PRAGMA user_version").fetchone()[0])
                if version == schema.SCHEMA_VERSION:
                    return version
                tables = int(raw.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
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

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (end of an index run)."""
        with self._errors(), self._engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    # ----------------------------------------------------------------------------- files

    def file_by_path(self, path: str) -> FileRecord | None:
        with self._read() as conn:
            row = conn.execute(select(*_FILE_COLUMNS).where(files.c.path == _enc(path))).first()
        return _file_record(row) if row else None

    def files_by_paths(self, paths: Sequence[str]) -> dict[str, FileRecord]:
        """The known files among `paths` (batched lookups for a directory walk)."""
        found: dict[str, FileRecord] = {}
        with self._read() as conn:
            for part in _chunks(list(paths)):
                stmt = select(*_FILE_COLUMNS).where(files.c.path.in_([_enc(p) for p in part]))
                for row in conn.execute(stmt):
                    record = _file_record(row)
                    found[record.path] = record
        return found

    def iter_files(
        self, under: str | None = None, *, status: FileStatus | None = None, page: int = 2000
    ) -> Iterator[FileRecord]:
        """Files whose path is inside folder `under` (all when None), in path order, paged."""
        conditions: list[ColumnElement[bool]] = []
        if under is not None:
            conditions.append(_under_clause(under))
        if status is not None:
            conditions.append(files.c.status == status.value)
        last = b""
        while True:
            stmt = select(*_FILE_COLUMNS).where(files.c.path > last, *conditions)
            with self._read() as conn:
                rows = conn.execute(stmt.order_by(files.c.path).limit(page)).all()
            yield from (_file_record(r) for r in rows)
            if len(rows) < page:
                return
            last = rows[-1].path

    def segments_for_hash(
        self, content_hash: str, modality: Modality, model_id: str
    ) -> tuple[StoredSegment, ...] | None:
        """Stored segments of one file with this content, modality and model; None if none has.

        Lets a renamed or duplicated file reuse vectors without decoding anything.
        """
        with self._read() as conn:
            has = select(segments.c.id).where(
                segments.c.file_id == files.c.id,
                segments.c.modality == modality.value,
                segments.c.model_id == model_id,
            )
            stmt = select(files.c.id).where(files.c.content_hash == content_hash, has.exists())
            file_id = conn.execute(stmt.order_by(files.c.id).limit(1)).scalar()
            if file_id is None:
                return None
            rows = conn.execute(
                select(segments.c.start_s, segments.c.end_s, segments.c.vector)
                .where(segments.c.file_id == file_id, segments.c.modality == modality.value)
                .order_by(segments.c.start_s, segments.c.id)
            ).all()
        return tuple(StoredSegment(r.start_s, r.end_s, _vector(r.vector)) for r in rows)

    # ---------------------------------------------------------------------------- writes

    def write_batch(self, batch: Sequence[IndexedFile | FailedFile]) -> BatchResult:
        """Store a batch of files and their segments in ONE transaction.

        A file already in the catalog (same path) is replaced, its old segments deleted. Every
        segment's modality must be registered with set_modality and carry its model id.
        """
        for item in batch:
            _check_input(item)
        if not batch:
            return BatchResult()
        now = time.time()
        with self._write() as conn:
            deltas = _Deltas(self.path, _states(conn))
            file_ids = [_upsert_file(conn, item, now) for item in batch]
            for part in _chunks(sorted(set(file_ids))):
                deltas.remove(_delete_segments(conn, part))
            last = dict(zip(file_ids, batch, strict=True))
            rows: list[tuple[Any, ...]] = []
            next_id = _next_segment_id(conn)
            for file_id, item in last.items():  # a path given twice: its last entry wins
                if isinstance(item, IndexedFile):
                    next_id = _segment_rows(file_id, item, next_id, deltas, rows)
            if rows:
                conn.exec_driver_sql(_INSERT_SEGMENT, rows)
            return BatchResult(tuple(file_ids), deltas.commit(conn, now))

    def record_failure(self, failed: FailedFile) -> BatchResult:
        """Record one file that could not be embedded (any earlier segments of it are dropped)."""
        return self.write_batch([failed])

    def delete_files(self, file_ids: Sequence[int]) -> BatchResult:
        """Forget files (deleted from disk, swept): their segments go with them."""
        if not file_ids:
            return BatchResult()
        now = time.time()
        with self._write() as conn:
            deltas = _Deltas(self.path, _states(conn))
            for part in _chunks(list(file_ids)):
                deltas.remove(_delete_segments(conn, part))
                conn.execute(delete(files).where(files.c.id.in_(part)))
            return BatchResult(tuple(file_ids), deltas.commit(conn, now))

    # ------------------------------------------------------------------------ modalities

    def modality_state(self, modality: Modality) -> ModalityState | None:
        """The modality's model, generation and segment count (None if never registered)."""
        with self._read() as conn:
            state = _states(conn).get(modality)
            if state is None:
                return None
            count = conn.exec_driver_sql(
                "SELECT count(*) FROM segments WHERE modality = ?", (modality.value,)
            ).scalar()
        return dataclasses.replace(state, segment_count=int(count or 0))

    def modality_states(self) -> dict[Modality, ModalityState]:
        with self._read() as conn:
            return _states(conn, counts=True)

    def set_modality(
        self, modality: Modality, model_id: str, preprocess_version: str, dim: int | None = None
    ) -> ModalityChange:
        """Register the model (and preprocessing version) a modality is embedded with.

        If either differs from what the catalog holds, every segment of the modality is deleted
        and the files that had them become `stale` (to be embedded again); other modalities of
        those files are kept.
        """
        now = time.time()
        with self._write() as conn:
            before = _states(conn, counts=True).get(modality)
            if before is None:
                _insert_modality(conn, modality, model_id, preprocess_version, dim, now)
                return ModalityChange(modality, None, _states(conn, counts=True)[modality])
            same = (before.model_id, before.preprocess_version) == (model_id, preprocess_version)
            if same and (dim is None or before.dim in (None, dim)):
                if dim is not None and before.dim is None:
                    _update_modality(conn, modality, dim=dim, updated_at=now)
                return ModalityChange(modality, before, _states(conn, counts=True)[modality])
            return _wipe_modality(conn, before, model_id, preprocess_version, dim, now)

    # --------------------------------------------------------------------------- vectors

    def segment_ids(self, modality: Modality) -> IdSnapshot:
        """All segment ids of a modality, sorted, with the generation they belong to."""
        with self._read() as conn:
            state = _states(conn).get(modality)
            cursor = conn.exec_driver_sql(
                "SELECT id FROM segments WHERE modality = ? ORDER BY id", (modality.value,)
            )
            ids = np.fromiter((r[0] for r in cursor), dtype=np.int64)
        return IdSnapshot(modality, state.generation if state else 0, ids)

    def stream_vectors(self, modality: Modality, chunk_rows: int = 4096) -> Iterator[VectorChunk]:
        """(ids, vectors) of a modality in id order, from one snapshot, a chunk at a time.

        Yields at least one (possibly empty) chunk so callers always learn the generation.
        """
        with self._read() as conn:
            state = _states(conn).get(modality)
            generation, dim = (state.generation, state.dim or 0) if state else (0, 0)
            last, sent = 0, False
            while True:
                rows = conn.exec_driver_sql(
                    "SELECT id, vector FROM segments WHERE modality = ? AND id > ? "
                    "ORDER BY id LIMIT ?",
                    (modality.value, last, chunk_rows),
                ).fetchall()
                if rows or not sent:
                    ids, vectors = _unpack(self.path, rows, dim)
                    yield VectorChunk(generation, ids, vectors)
                    sent = True
                if len(rows) < chunk_rows:
                    return
                last = int(rows[-1][0])

    def vectors_by_ids(self, modality: Modality, ids: Sequence[int] | np.ndarray) -> VectorChunk:
        """Stored vectors of the given segment ids (those that exist), sorted by id."""
        with self._read() as conn:
            state = _states(conn).get(modality)
            generation, dim = (state.generation, state.dim or 0) if state else (0, 0)
            rows: list[Any] = []
            for part in _chunks(sorted({int(i) for i in ids})):
                marks = ",".join("?" * len(part))
                rows += conn.exec_driver_sql(
                    f"SELECT id, vector FROM segments WHERE modality = ? AND id IN ({marks}) "
                    "ORDER BY id",
                    (modality.value, *part),
                ).fetchall()
        found, vectors = _unpack(self.path, rows, dim)
        return VectorChunk(generation, found, vectors)

    def sample_vectors(self, modality: Modality, count: int, seed: int = 0) -> VectorChunk:
        """Up to `count` stored vectors chosen at random (to train an approximate index)."""
        ids = self.segment_ids(modality).ids
        if len(ids) > count:
            ids = np.sort(np.random.default_rng(seed).choice(ids, size=count, replace=False))
        return self.vectors_by_ids(modality, ids)

    # ---------------------------------------------------------------------------- search

    def segment_ids_matching(self, modality: Modality, where: SegmentFilter) -> np.ndarray:
        """Ids of the modality's segments whose file passes `where` (an allow-list for search)."""
        stmt = (
            select(segments.c.id)
            .join(files, files.c.id == segments.c.file_id)
            .where(segments.c.modality == modality.value, *_filter_clauses(where))
        )
        with self._read() as conn:
            return np.fromiter(conn.execute(stmt).scalars(), dtype=np.int64)

    def segments_by_ids(
        self, ids: Sequence[int] | np.ndarray, where: SegmentFilter | None = None
    ) -> dict[int, SegmentHit]:
        """Segments with their files, for search results; ids that are gone or filtered out are
        absent from the answer."""
        clauses = _filter_clauses(where) if where else []
        hits: dict[int, SegmentHit] = {}
        base = select(*_SEGMENT_COLUMNS, *_FILE_COLUMNS).join(
            files, files.c.id == segments.c.file_id
        )
        with self._read() as conn:
            for part in _chunks(sorted({int(i) for i in ids})):
                for row in conn.execute(base.where(segments.c.id.in_(part), *clauses)):
                    segment = _segment_record(row)
                    hits[segment.id] = SegmentHit(segment, _file_record(row))
        return hits

    # ------------------------------------------------------------------------ runs, stats

    def start_run(self, roots: Sequence[str]) -> int:
        """Record the start of an index run; earlier runs left open were interrupted."""
        with self._write() as conn:
            conn.execute(
                update(runs).where(runs.c.status == "running").values(status="interrupted")
            )
            values = {"started_at": time.time(), "roots": json.dumps(list(roots)), "counts": "{}"}
            stmt = insert(runs).values(status="running", **values).returning(runs.c.id)
            return int(conn.execute(stmt).scalar_one())

    def finish_run(self, run_id: int, counts: RunCounts) -> None:
        with self._write() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(finished_at=time.time(), status="finished", counts=_counts_json(counts))
            )

    def last_run(self) -> RunRecord | None:
        with self._read() as conn:
            return _last_run(conn)

    def stats(self, failed_limit: int = 100) -> CatalogStats:
        """Counts per modality and status, failures, roots and the last run, in one snapshot."""
        with self._read() as conn:
            states = _states(conn, counts=True)
            by_status = conn.execute(
                select(files.c.modality, files.c.status, func.count()).group_by(
                    files.c.modality, files.c.status
                )
            ).all()
            seg_stmt = select(segments.c.modality, func.count()).group_by(segments.c.modality)
            seg_counts: dict[str, int] = {str(m): int(n) for m, n in conn.execute(seg_stmt).all()}
            failed = conn.execute(
                select(*_FILE_COLUMNS)
                .where(files.c.status == FileStatus.FAILED.value)
                .order_by(files.c.indexed_at.desc(), files.c.id)
                .limit(failed_limit)
            ).all()
            return CatalogStats(
                library_id=self.library_id,
                schema_version=self.schema_version,
                files=sum(int(r[2]) for r in by_status),
                segments=sum(int(v) for v in seg_counts.values()),
                modalities=_modality_stats(by_status, seg_counts, states),
                failures_by_reason=_failure_counts(conn),
                failed_files=tuple(_file_record(r) for r in failed),
                roots=_root_stats(conn),
                last_run=_last_run(conn),
                catalog_bytes=self.size_on_disk(),
            )

    def size_on_disk(self) -> int:
        """Bytes of the database with its write-ahead log and shared-memory files."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with suppress(OSError):
                total += Path(f"{self.path}{suffix}").stat().st_size
        return total


# --------------------------------------------------------------------------- engine helpers


def _make_engine(path: Path, *, create: bool, busy_timeout_s: float) -> Engine:
    mode = "rwc" if create else "rw"
    uri = f"file:{quote(str(path.absolute()))}?mode={mode}"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(
            uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
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


def _translate(path: Path, text: str, busy_timeout_s: float) -> CatalogError:
    if "locked" in text or "busy" in text:
        return CatalogError(
            f"{path}: the catalog stayed locked by another process for {busy_timeout_s:g} s",
            "another lbsearch process is writing; retry, or raise [library] busy_timeout_s",
        )
    if "not a database" in text or "malformed" in text:
        return CatalogError(
            f"{path}: the catalog file is damaged ({text})",
            "move catalog.sqlite away and run `lbsearch index` again to rebuild the library",
        )
    if "full" in text:
        return CatalogError(f"{path}: disk full while writing the catalog", "free some space")
    if "readonly" in text or "unable to open" in text:
        return CatalogError(
            f"{path}: cannot open or write the catalog ({text})",
            "check the library folder's permissions and that the disk is mounted",
        )
    return CatalogError(f"{path}: catalog error: {text}", "retry; if it persists, report it")


# ------------------------------------------------------------------------------ row helpers


def _enc(path: str) -> bytes:
    return os.fsencode(path)


def _chunks(items: list[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _file_record(row: Any) -> FileRecord:
    return FileRecord(
        id=row.id,
        path=os.fsdecode(row.path),
        root=os.fsdecode(row.root),
        size=row.size,
        mtime_ns=row.mtime_ns,
        content_hash=row.content_hash,
        modality=Modality(row.modality) if row.modality else None,
        status=FileStatus(row.status),
        reason=row.reason,
        detail=row.detail,
        duration_s=row.duration_s,
        width=row.width,
        height=row.height,
        model_id=row.model_id,
        indexed_at=row.indexed_at,
    )


def _segment_record(row: Any) -> SegmentRecord:
    return SegmentRecord(
        id=row.s_id,
        file_id=row.s_file_id,
        modality=Modality(row.s_modality),
        start_s=row.s_start_s,
        end_s=row.s_end_s,
        model_id=row.s_model_id,
    )


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32, copy=True)


def _unpack(path: Path, rows: Sequence[Any], dim: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    if not rows:
        return ids, np.zeros((0, dim), dtype=np.float32)
    blob = b"".join(r[1] for r in rows)
    if len(blob) != len(rows) * dim * 4:
        raise CatalogError(
            f"{path}: stored vectors do not all have {dim} dimensions",
            "the catalog is damaged; move it away and index again",
        )
    return ids, np.frombuffer(blob, dtype="<f4").reshape(len(rows), dim).astype(np.float32)


def _states(conn: Connection, counts: bool = False) -> dict[Modality, ModalityState]:
    """Registered modalities; segment counts only when asked (a count scans the id index)."""
    numbers: dict[str, int] = {}
    if counts:
        stmt = select(segments.c.modality, func.count()).group_by(segments.c.modality)
        numbers = {str(m): int(n) for m, n in conn.execute(stmt).all()}
    return {
        Modality(r.modality): ModalityState(
            modality=Modality(r.modality),
            model_id=r.model_id,
            preprocess_version=r.preprocess_version,
            dim=r.dim,
            generation=r.generation,
            segment_count=numbers.get(r.modality, 0),
            updated_at=r.updated_at,
        )
        for r in conn.execute(select(modalities))
    }


def _check_input(item: IndexedFile | FailedFile) -> None:
    for name in ("path", "root"):
        value = getattr(item, name)
        if not Path(value).is_absolute():
            raise CatalogError(
                f"{value}: catalog {name}s must be absolute", "resolve paths before storing them"
            )
    if isinstance(item, IndexedFile):
        for seg in item.segments:
            vec = np.asarray(seg.vector)
            if vec.ndim != 1 or not np.all(np.isfinite(vec)):
                raise CatalogError(
                    f"{item.path}: segment {seg.start_s:g}-{seg.end_s:g} s has a vector that is "
                    "not a finite 1-D array",
                    "the encoder produced NaN/inf or a batch; this is a bug in the caller",
                )


_FILE_FIELDS = (
    "path",
    "root",
    "size",
    "mtime_ns",
    "content_hash",
    "modality",
    "status",
    "reason",
    "detail",
    "duration_s",
    "width",
    "height",
    "model_id",
    "indexed_at",
)
# Hot path (once per file per batch): plain SQL, not SQLAlchemy statements, which cost ~3 ms each
# to build and compile here against ~0.05 ms to run.
_UPSERT_FILE = (
    f"INSERT INTO files ({', '.join(_FILE_FIELDS)}) VALUES ({', '.join('?' * len(_FILE_FIELDS))}) "
    "ON CONFLICT (path) DO UPDATE SET "
    + ", ".join(f"{f} = excluded.{f}" for f in _FILE_FIELDS[1:])
    + " RETURNING id"
)
_INSERT_SEGMENT = (
    "INSERT INTO segments (id, file_id, modality, start_s, end_s, model_id, vector) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _upsert_file(conn: Connection, item: IndexedFile | FailedFile, now: float) -> int:
    common = (_enc(item.path), _enc(item.root), item.size, item.mtime_ns, item.content_hash)
    modality = item.modality.value if item.modality else None
    if isinstance(item, IndexedFile):
        status: tuple[Any, ...] = (FileStatus.INDEXED.value, None, None)
        extra: tuple[Any, ...] = (item.duration_s, item.width, item.height, item.model_id)
    else:
        status = (FileStatus.FAILED.value, item.reason, item.detail)
        extra = (None, None, None, None)
    params = (*common, modality, *status, *extra, now)
    return int(conn.exec_driver_sql(_UPSERT_FILE, params).scalar_one())


def _delete_segments(conn: Connection, file_ids: list[int]) -> list[tuple[int, str]]:
    marks = ",".join("?" * len(file_ids))
    rows = conn.exec_driver_sql(
        f"DELETE FROM segments WHERE file_id IN ({marks}) RETURNING id, modality", tuple(file_ids)
    )
    return [(int(r[0]), str(r[1])) for r in rows]


def _next_segment_id(conn: Connection) -> int:
    seq = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'segments'").scalar()
    top = conn.exec_driver_sql("SELECT max(id) FROM segments").scalar()
    return max(int(seq or 0), int(top or 0)) + 1


def _segment_rows(
    file_id: int, item: IndexedFile, next_id: int, deltas: _Deltas, rows: list[tuple[Any, ...]]
) -> int:
    for seg in item.segments:
        vector = deltas.add(item.path, seg, next_id)
        blob = vector.astype("<f4").tobytes()
        start, end = float(seg.start_s), float(seg.end_s)
        rows.append((next_id, file_id, seg.modality.value, start, end, seg.model_id, blob))
        next_id += 1
    return next_id


class _Deltas:
    """Collects the segment ids one transaction adds and removes, per modality."""

    def __init__(self, path: Path, states: dict[Modality, ModalityState]) -> None:
        self.path = path
        self.states = states
        self.added: dict[Modality, dict[int, np.ndarray]] = {}
        self.removed: dict[Modality, list[int]] = {}
        self.dims: dict[Modality, int] = {}

    def add(self, file_path: str, seg: Any, segment_id: int) -> np.ndarray:
        state = self.states.get(seg.modality)
        if state is None or state.model_id != seg.model_id:
            known = state.model_id if state else "nothing"
            raise CatalogError(
                f"{file_path}: {seg.modality} segment from model {seg.model_id!r}, but the "
                f"catalog's {seg.modality} model is {known!r}",
                "call set_modality before writing; this is a bug in the caller",
            )
        vector = np.asarray(seg.vector, dtype=np.float32)
        dim = self.dims.setdefault(seg.modality, state.dim or len(vector))
        if len(vector) != dim:
            raise CatalogError(
                f"{file_path}: {seg.modality} vector has {len(vector)} dimensions, "
                f"the modality has {dim}",
                "vectors of one modality must come from one model; this is a bug in the caller",
            )
        self.added.setdefault(seg.modality, {})[segment_id] = vector
        return vector

    def remove(self, rows: list[tuple[int, str]]) -> None:
        for segment_id, name in rows:
            modality = Modality(name)
            if self.added.get(modality, {}).pop(segment_id, None) is None:
                self.removed.setdefault(modality, []).append(segment_id)

    def commit(self, conn: Connection, now: float) -> dict[Modality, ModalityDelta]:
        deltas = {}
        for modality in sorted(set(self.added) | set(self.removed)):
            added = self.added.get(modality, {})
            removed = self.removed.get(modality, [])
            if not added and not removed:
                continue
            state = self.states[modality]
            dim = self.dims.get(modality, state.dim or 0)
            _update_modality(conn, modality, generation=state.generation + 1, dim=dim or None)
            deltas[modality] = ModalityDelta(
                modality=modality,
                generation_before=state.generation,
                generation=state.generation + 1,
                added_ids=np.fromiter(added, dtype=np.int64, count=len(added)),
                added_vectors=np.stack(list(added.values())).astype(np.float32)
                if added
                else np.zeros((0, dim), dtype=np.float32),
                removed_ids=np.asarray(removed, dtype=np.int64),
                dim=dim or None,
            )
        return deltas


def _insert_modality(
    conn: Connection, modality: Modality, model_id: str, version: str, dim: int | None, now: float
) -> None:
    conn.execute(
        insert(modalities).values(
            modality=modality.value,
            model_id=model_id,
            preprocess_version=version,
            dim=dim,
            generation=0,
            updated_at=now,
        )
    )


def _update_modality(conn: Connection, modality: Modality, **values: Any) -> None:
    values.setdefault("updated_at", time.time())
    conn.execute(update(modalities).where(modalities.c.modality == modality.value).values(**values))


def _wipe_modality(
    conn: Connection,
    before: ModalityState,
    model_id: str,
    version: str,
    dim: int | None,
    now: float,
) -> ModalityChange:
    modality = before.modality
    had = select(segments.c.file_id).where(segments.c.modality == modality.value)
    stale = conn.execute(
        update(files)
        .where(
            files.c.status == FileStatus.INDEXED.value,
            or_(files.c.id.in_(had), files.c.modality == modality.value),
        )
        .values(status=FileStatus.STALE.value)
    ).rowcount
    removed = conn.execute(
        delete(segments).where(segments.c.modality == modality.value).returning(segments.c.id)
    ).scalars()
    removed_ids = np.fromiter(removed, dtype=np.int64)
    generation = before.generation + 1
    values = {"model_id": model_id, "preprocess_version": version, "dim": dim}
    _update_modality(conn, modality, generation=generation, updated_at=now, **values)
    delta = ModalityDelta(
        modality=modality,
        generation_before=before.generation,
        generation=generation,
        added_ids=np.zeros(0, dtype=np.int64),
        added_vectors=np.zeros((0, dim or 0), dtype=np.float32),
        removed_ids=removed_ids,
        reset=True,
        dim=dim,
    )
    current = _states(conn, counts=True)[modality]
    return ModalityChange(modality, before, current, len(removed_ids), int(stale or 0), delta)


def _under_clause(folder: str) -> ColumnElement[bool]:
    """Paths strictly inside `folder`, as a range on the path index (no LIKE escaping)."""
    sep = os.sep.encode()
    base = _enc(folder).rstrip(sep)
    return and_(files.c.path > base + sep, files.c.path < base + bytes([sep[0] + 1]))


def _filter_clauses(where: SegmentFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if where.modalities:
        clauses.append(segments.c.modality.in_([m.value for m in where.modalities]))
    if where.path_globs:
        text_path = cast(files.c.path, Text)  # bytes compared as text, so any name works
        globs = (cast(literal(_enc(g), LargeBinary), Text) for g in where.path_globs)
        clauses.append(or_(*(text_path.op("GLOB")(g) for g in globs)))
    if where.under:
        clauses.append(or_(*(_under_clause(folder) for folder in where.under)))
    if where.modified_after is not None:
        clauses.append(files.c.mtime_ns >= int(where.modified_after * 1e9))
    if where.modified_before is not None:
        clauses.append(files.c.mtime_ns <= int(where.modified_before * 1e9))
    if where.min_duration_s is not None:
        clauses.append(files.c.duration_s >= where.min_duration_s)
    if where.max_duration_s is not None:
        clauses.append(files.c.duration_s <= where.max_duration_s)
    return clauses


def _modality_stats(
    by_status: Sequence[Any], seg_counts: dict[str, int], states: dict[Modality, ModalityState]
) -> tuple[ModalityStats, ...]:
    out = []
    for modality in Modality:
        counts = {
            FileStatus(status): int(n) for name, status, n in by_status if name == modality.value
        }
        segs = int(seg_counts.get(modality.value, 0))
        if counts or segs or modality in states:
            out.append(ModalityStats(modality, counts, segs, states.get(modality)))
    return tuple(out)


def _failure_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        select(files.c.reason, func.count())
        .where(files.c.status == FileStatus.FAILED.value)
        .group_by(files.c.reason)
        .order_by(func.count().desc())
    ).all()
    return {str(reason): int(n) for reason, n in rows}


def _root_stats(conn: Connection) -> tuple[RootStats, ...]:
    rows = conn.execute(
        select(files.c.root, func.count(), func.max(files.c.indexed_at))
        .group_by(files.c.root)
        .order_by(files.c.root)
    ).all()
    return tuple(RootStats(os.fsdecode(root), int(n), float(t)) for root, n, t in rows)


def _counts_json(counts: RunCounts) -> str:
    return json.dumps(counts.__dict__)


def _last_run(conn: Connection) -> RunRecord | None:
    row = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    known = {k: v for k, v in json.loads(row.counts).items() if k in RunCounts.__dataclass_fields__}
    return RunRecord(
        id=row.id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        roots=tuple(json.loads(row.roots)),
        status=row.status,
        counts=RunCounts(**known),
    )
