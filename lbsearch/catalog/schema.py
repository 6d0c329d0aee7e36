"""The catalog's tables and the ordered migrations that build them.

The schema version lives in SQLite's `PRAGMA user_version`. A fresh database runs every migration
in order; an older one runs the missing ones; each step runs in the same write transaction as the
version bump, so a crash leaves either the old or the new schema. Migrations are history: never
edit a released step, append a new one. The Table objects below describe the latest schema
(tests check that they match what the migrations build).

Paths are stored as BLOBs (os.fsencode) so file names that are not valid UTF-8 round-trip.
Segment ids use AUTOINCREMENT so an id is never reused: FAISS ids equal segment ids, and a stale
index must never find a new segment under an old id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Connection,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

from . import shape


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    statements = [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE modalities (
            modality TEXT PRIMARY KEY,
            model_id TEXT NOT NULL,
            preprocess_version TEXT NOT NULL,
            dim INTEGER,
            generation INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL)""",
        """CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            path BLOB NOT NULL UNIQUE,
            root BLOB NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            content_hash TEXT,
            modality TEXT,
            status TEXT NOT NULL CHECK (status IN ('indexed', 'failed', 'stale')),
            reason TEXT,
            detail TEXT,
            duration_s REAL,
            width INTEGER,
            height INTEGER,
            model_id TEXT,
            indexed_at REAL NOT NULL)""",
        "CREATE INDEX files_content_hash ON files (content_hash)",
        "CREATE INDEX files_status ON files (status)",
        """CREATE TABLE segments (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            modality TEXT NOT NULL,
            start_s REAL NOT NULL,
            end_s REAL NOT NULL,
            model_id TEXT NOT NULL,
            vector BLOB NOT NULL)""",
        "CREATE INDEX segments_file ON segments (file_id)",
        "CREATE INDEX segments_modality ON segments (modality, id)",
    ]
    for sql in statements:
        conn.exec_driver_sql(sql)
    conn.exec_driver_sql(
        "INSERT INTO meta (key, value) VALUES ('library_id', ?)", (uuid.uuid4().hex,)
    )


def _v2_runs(conn: Connection) -> None:
    """Version 1 kept only the last run's time in `meta`; version 2 keeps a history of runs."""
    conn.exec_driver_sql(
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started_at REAL NOT NULL,
            finished_at REAL,
            roots TEXT NOT NULL,
            status TEXT NOT NULL,
            counts TEXT NOT NULL DEFAULT '{}')"""
    )
    conn.exec_driver_sql(
        """INSERT INTO runs (started_at, finished_at, roots, status)
           SELECT CAST(value AS REAL), CAST(value AS REAL),
                  COALESCE((SELECT value FROM meta WHERE key = 'last_run_roots'), '[]'),
                  'finished'
           FROM meta WHERE key = 'last_run_at'"""
    )
    conn.exec_driver_sql("DELETE FROM meta WHERE key IN ('last_run_at', 'last_run_roots')")


def _v3_keep_what_was_given(conn: Connection) -> None:
    """Version 3: the library keeps what it was given.

    - files: ctime, device and inode join size and mtime in deciding "unchanged";
    - segments: the preprocessing version each vector was made with (a newer lbsearch keeps old
      vectors serving and re-embeds only on `--reembed`);
    - modalities: a shadow model, embedded beside the serving one by `--reembed`, with its
      segments and failures in their own tables until it replaces the serving one;
    - the back-end and dtype are provenance recorded per run, no longer part of a modality's
      identity: v2 stored them after a ';' in preprocess_version, which is cut off here;
    - offline: folders that could not be listed, whose files are kept and marked.
    """
    statements = [
        "ALTER TABLE files ADD COLUMN ctime_ns INTEGER",
        "ALTER TABLE files ADD COLUMN dev INTEGER",
        "ALTER TABLE files ADD COLUMN ino INTEGER",
        "ALTER TABLE segments ADD COLUMN preprocess_version TEXT",
        "ALTER TABLE modalities ADD COLUMN shadow_model_id TEXT",
        "ALTER TABLE modalities ADD COLUMN shadow_preprocess_version TEXT",
        "ALTER TABLE modalities ADD COLUMN shadow_dim INTEGER",
        """CREATE TABLE shadow_segments (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            modality TEXT NOT NULL,
            start_s REAL NOT NULL,
            end_s REAL NOT NULL,
            vector BLOB NOT NULL)""",
        "CREATE INDEX shadow_segments_file ON shadow_segments (file_id, modality)",
        """CREATE TABLE shadow_failures (
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            modality TEXT NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT,
            PRIMARY KEY (file_id, modality))""",
        "ALTER TABLE runs ADD COLUMN encodings TEXT NOT NULL DEFAULT '{}'",
        """CREATE TABLE offline (
            folder BLOB PRIMARY KEY,
            root BLOB NOT NULL,
            reason TEXT NOT NULL,
            since REAL NOT NULL)""",
    ]
    for sql in statements:
        conn.exec_driver_sql(sql)
    rows = conn.exec_driver_sql("SELECT modality, preprocess_version FROM modalities").all()
    for modality, recipe in rows:
        version = _without_encoding(str(recipe))
        conn.exec_driver_sql(
            "UPDATE modalities SET preprocess_version = ? WHERE modality = ?", (version, modality)
        )
        conn.exec_driver_sql(
            "UPDATE segments SET preprocess_version = ? WHERE modality = ?", (version, modality)
        )


def _without_encoding(recipe: str) -> str:
    """v2 recorded `<preprocess version>;<backend>/<dtype>`; the version has ';' of its own."""
    head, sep, last = recipe.rpartition(";")
    return head if sep and "/" in last else recipe


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "files, segments, modalities, meta", _v1_initial),
    Migration(2, "runs: history of index runs (replaces meta.last_run_at)", _v2_runs),
    Migration(
        3,
        "change detection, offline folders, shadow models, encodings per run",
        _v3_keep_what_was_given,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
if SCHEMA_VERSION != shape.SCHEMA_VERSION:
    raise ImportError("catalog/shape.py's SCHEMA_VERSION is not the last migration's")


def migrate(conn: Connection, current: int, target: int = SCHEMA_VERSION) -> list[int]:
    """Run the steps after `current` up to `target` on `conn` (inside the caller's transaction)."""
    done = []
    for step in MIGRATIONS:
        if current < step.version <= target:
            step.apply(conn)
            done.append(step.version)
    conn.exec_driver_sql(f"PRAGMA user_version = {int(target)}")
    return done


metadata = MetaData()

meta = Table("meta", metadata, Column("key", Text, primary_key=True), Column("value", Text))

modalities = Table(
    "modalities",
    metadata,
    Column("modality", Text, primary_key=True),
    Column("model_id", Text, nullable=False),
    Column("preprocess_version", Text, nullable=False),
    Column("dim", Integer),
    Column("generation", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("shadow_model_id", Text),
    Column("shadow_preprocess_version", Text),
    Column("shadow_dim", Integer),
)

files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("path", LargeBinary, nullable=False, unique=True),
    Column("root", LargeBinary, nullable=False),
    Column("size", Integer, nullable=False),
    Column("mtime_ns", Integer, nullable=False),
    Column("content_hash", Text),
    Column("modality", Text),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("detail", Text),
    Column("duration_s", Float),
    Column("width", Integer),
    Column("height", Integer),
    Column("model_id", Text),
    Column("indexed_at", Float, nullable=False),
    Column("ctime_ns", Integer),
    Column("dev", Integer),
    Column("ino", Integer),
)

segments = Table(
    "segments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("file_id", Integer, ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
    Column("modality", Text, nullable=False),
    Column("start_s", Float, nullable=False),
    Column("end_s", Float, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("preprocess_version", Text),
)

shadow_segments = Table(
    "shadow_segments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("file_id", Integer, ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
    Column("modality", Text, nullable=False),
    Column("start_s", Float, nullable=False),
    Column("end_s", Float, nullable=False),
    Column("vector", LargeBinary, nullable=False),
)

shadow_failures = Table(
    "shadow_failures",
    metadata,
    Column("file_id", Integer, ForeignKey("files.id", ondelete="CASCADE"), primary_key=True),
    Column("modality", Text, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("detail", Text),
)

offline = Table(
    "offline",
    metadata,
    Column("folder", LargeBinary, primary_key=True),
    Column("root", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("since", Float, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("roots", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("counts", Text, nullable=False),
    Column("encodings", Text, nullable=False),
)


if (
    tuple(c.name for c in files.c) != shape.FILE_COLUMNS
    or tuple(c.name for c in segments.c if c.name != "vector") != shape.SEGMENT_COLUMNS
):
    raise ImportError("catalog/shape.py's columns are not the tables' (change both)")
