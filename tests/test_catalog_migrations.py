"""Schema versions: an older catalog is migrated at open, in one transaction, keeping its data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect

from lbsearch.catalog import Catalog, CatalogError, CatalogMigrationNeeded
from lbsearch.catalog import schema as catalog_schema
from lbsearch.library import Library
from lbsearch.types import Modality


def make_v1_catalog(path: Path) -> None:
    """A catalog as lbsearch with schema v1 wrote it: last run kept in meta, no runs table."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        catalog_schema.migrate(conn, 0, target=1)
        conn.exec_driver_sql("INSERT INTO meta VALUES ('last_run_at', '1700000000.5')")
        conn.exec_driver_sql("INSERT INTO meta VALUES ('last_run_roots', '[\"/photos\"]')")
        conn.exec_driver_sql(
            "INSERT INTO modalities VALUES ('image', 'img-1', '1', 4, 3, 1700000000.0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO files (id, path, root, size, mtime_ns, content_hash, modality, status,"
            " indexed_at) VALUES (1, ?, ?, 10, 20, 'h', 'image', 'indexed', 1700000000.0)",
            (b"/photos/a.jpg", b"/photos"),
        )
        vector = np.arange(4, dtype="<f4").tobytes()
        conn.exec_driver_sql(
            "INSERT INTO segments VALUES (7, 1, 'image', 0, 0, 'img-1', ?)", (vector,)
        )
    engine.dispose()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA journal_mode=WAL")
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1


def schema_sql(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as raw:
        rows = raw.execute(
            "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
    return [(name, " ".join(sql.split())) for name, sql in rows]


def test_v1_catalog_is_migrated_with_its_data(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite"
    make_v1_catalog(old)
    with Catalog(old) as cat:
        assert cat.schema_version == catalog_schema.SCHEMA_VERSION == 3
        run = cat.last_run()
        assert run is not None and run.started_at == 1700000000.5 and run.roots == ("/photos",)
        assert run.status == "finished"
        state = cat.modality_state(Modality.IMAGE)
        assert state is not None and (state.generation, state.segment_count) == (3, 1)
        chunk = cat.vectors_by_ids(Modality.IMAGE, [7])
        np.testing.assert_array_equal(chunk.vectors[0], np.arange(4, dtype=np.float32))
        assert cat.integrity_check() == []
    fresh = tmp_path / "fresh.sqlite"
    Catalog(fresh, create=True).close()
    assert schema_sql(old) == schema_sql(fresh)  # migrating gives exactly the fresh schema


def test_tables_in_code_match_the_migrated_schema(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    Catalog(path, create=True).close()
    inspector = inspect(create_engine(f"sqlite:///{path}"))
    for table in catalog_schema.metadata.tables.values():
        in_db = [c["name"] for c in inspector.get_columns(table.name)]
        assert in_db == [c.name for c in table.columns], table.name


def test_readers_do_not_migrate_but_the_library_does_under_the_lock(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    make_v1_catalog(root / "catalog.sqlite")
    with pytest.raises(CatalogMigrationNeeded, match="v1 needs an upgrade"):
        Catalog(root / "catalog.sqlite", migrate=False)
    with Library.open(root) as lib:  # a reader: takes the writer lock only to migrate
        assert lib.catalog.schema_version == 3
        assert not lib.writable


def test_a_newer_catalog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    Catalog(path, create=True).close()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 99")
    with pytest.raises(CatalogError, match="newer lbsearch") as err:
        Catalog(path)
    assert "upgrade lbsearch" in err.value.hint


def test_v2_encodings_are_cut_from_the_recipe_and_nothing_is_re_embedded(tmp_path: Path) -> None:
    """v2 recorded `<preprocess version>;<backend>/<dtype>`: a library indexed at bf16 then
    opened by a run at fp32 must keep every vector (the encoding is provenance now)."""
    old = tmp_path / "v2.sqlite"
    make_v1_catalog(old)
    engine = create_engine(f"sqlite:///{old}")
    with engine.begin() as conn:
        catalog_schema.migrate(conn, 1, target=2)
        conn.exec_driver_sql(
            "UPDATE modalities SET preprocess_version = '1.2;hop=1036;window=10;torch/bfloat16'"
        )
    engine.dispose()
    with Catalog(old) as cat:
        state = cat.modality_state(Modality.IMAGE)
        assert state is not None and state.preprocess_version == "1.2;hop=1036;window=10"
        change = cat.set_modality(Modality.IMAGE, "img-1", "1.2;hop=1036;window=10", 4)
        assert not change.changed and cat.outdated_files(Modality.IMAGE) == 0
        assert len(cat.segment_ids(Modality.IMAGE).ids) == 1
        record = cat.file_by_path("/photos/a.jpg")
        assert record is not None and (record.ctime_ns, record.dev, record.ino) == (None,) * 3
