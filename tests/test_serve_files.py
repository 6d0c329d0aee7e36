"""What `lbsearch serve` hands out: only indexed files, where they were indexed, as they were.

The hostile folder: links to files outside it (`passwd.jpg -> /etc/passwd`, `holiday.png ->
../private.txt`, a link to a real picture outside that indexes well), a file that fails to
index, and, after indexing, a picture swapped for a link to a private file of the same size and
mtime and another replaced by a different file of the same size and mtime. Every id on every
route answers 404 and no private byte comes back; the honest files are still served.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_helpers import Running, index_folder, serving

from lbsearch.catalog.records import FileRecord, FileStatus
from lbsearch.library import Library
from lbsearch.media.indexed import NotServable, Roots, open_indexed
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_sample_media
from lbsearch.types import Modality

SECRET = b"PRIVATE-" * 64


def _picture(path: Path, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _same_size_and_mtime(path: Path, like: Path, fill: bytes) -> None:
    """Write `fill` repeated to exactly `like`'s size, with `like`'s mtime."""
    size = like.stat().st_size
    path.write_bytes((fill * (size // len(fill) + 1))[:size])
    os.utime(path, ns=(like.stat().st_atime_ns, like.stat().st_mtime_ns))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Path]]:
    base = tmp_path_factory.mktemp("hostile")
    media = base / "media"
    write_sample_media(media)
    (base / "private.txt").write_bytes(SECRET)
    _picture(base / "secret.png", 1)  # a real picture outside the root
    (media / "passwd.jpg").symlink_to("/etc/passwd")
    (media / "holiday.png").symlink_to("../private.txt")
    (media / "outside.png").symlink_to("../secret.png")  # indexes well: the walk follows links
    (media / "broken.jpg").write_bytes(b"\xff\xd8 not a picture")
    swapped_link, swapped_file = _picture(media / "a1.png", 2), _picture(media / "a2.png", 3)
    index_folder(media, base / "library", FakeEncoders())
    # after indexing: the same size and mtime, other bytes
    private = base / "private-same-size.bin"
    _same_size_and_mtime(private, swapped_link, SECRET)
    stamp = swapped_link.stat()
    swapped_link.unlink()
    swapped_link.symlink_to(private)
    os.utime(swapped_link, ns=(stamp.st_atime_ns, stamp.st_mtime_ns), follow_symlinks=False)
    replacement = base / "replacement.png"
    _same_size_and_mtime(replacement, swapped_file, SECRET)
    replacement.replace(swapped_file)
    bad = {"link": swapped_link, "file": swapped_file, "outside": media / "outside.png"}
    return media, base / "library", bad


@pytest.fixture(scope="module")
def running(hostile: tuple[Path, Path, dict[str, Path]]) -> Iterator[Running]:
    with serving(hostile[1]) as run:
        yield run


def _rows(library: Path) -> list[FileRecord]:
    with Library.open(library) as lib:
        rows = []
        for file_id in range(1, 200):
            record = lib.file_by_id(file_id)
            if record is not None:
                rows.append(record)
        return rows


def _segments(library: Path) -> dict[int, int]:
    """segment id -> file id, for every segment."""
    with Library.open(library) as lib:
        found = lib.segments_by_ids(list(range(1, 2000)))
        return {segment_id: hit.file.id for segment_id, hit in found.items()}


def test_every_id_on_every_route_serves_only_honest_files(
    running: Running, hostile: tuple[Path, Path, dict[str, Path]]
) -> None:
    _, library, bad = hostile
    rows = _rows(library)
    by_path = {Path(r.path).name: r for r in rows}
    assert by_path["passwd.jpg"].status is FileStatus.FAILED
    assert by_path["holiday.png"].status is FileStatus.FAILED
    assert by_path["outside.png"].status is FileStatus.INDEXED  # the walk followed the link
    refused = {r.id for r in rows if r.status is not FileStatus.INDEXED}
    refused |= {by_path[p.name].id for p in bad.values()}
    honest = {r.id for r in rows} - refused
    assert honest and refused
    timed = {r.id for r in rows if r.modality in (Modality.VIDEO, Modality.AUDIO)}
    assert honest & timed
    served: set[int] = set()
    with httpx.Client(base_url=running.base, timeout=60) as http:
        for file_id in range(0, max(r.id for r in rows) + 3):
            got = http.get(f"/api/files/{file_id}/content")
            assert SECRET[:16] not in got.content
            assert got.status_code in (200, 404), got.text
            if got.status_code == 200:
                served.add(file_id)
            similar = http.get("/api/search", params={"like_id": str(file_id)})
            assert similar.status_code in (200, 404), similar.text
            assert (similar.status_code == 200) == (file_id in honest), file_id
            clip = http.get(f"/api/files/{file_id}/clip", params={"start": "0", "end": "1"})
            assert SECRET[:16] not in clip.content
            if file_id in honest:  # a picture cannot be cut; a video or a sound can
                assert clip.status_code == (200 if file_id in timed else 400), clip.text
            else:
                assert clip.status_code == 404, clip.text
        for segment_id, file_id in _segments(library).items():
            for size in ("160", "320", "640"):
                thumb = http.get(f"/api/segments/{segment_id}/thumbnail", params={"size": size})
                assert thumb.status_code in (200, 404), thumb.text
                assert (thumb.status_code == 200) == (file_id in honest), (segment_id, file_id)
    assert served == honest


def _record(file: Path, **changes: object) -> FileRecord:
    st = file.stat()
    values: dict[str, object] = {
        "id": 1,
        "path": str(file),
        "root": str(file.parent),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "content_hash": "ab" * 16,
        "modality": Modality.IMAGE,
        "status": FileStatus.INDEXED,
        "reason": None,
        "detail": None,
        "duration_s": None,
        "width": None,
        "height": None,
        "model_id": "fake",
        "indexed_at": 0.0,
        "ctime_ns": st.st_ctime_ns,
        "dev": st.st_dev,
        "ino": st.st_ino,
    }
    values.update(changes)
    return FileRecord(**values)  # type: ignore[arg-type]


def test_open_indexed_checks_status_root_links_and_identity(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    picture = _picture(root / "p.png", 4)
    roots = Roots.of([str(root)])
    handle, st = open_indexed(_record(picture), roots)
    with handle:
        assert handle.read() == picture.read_bytes() and st.st_size == picture.stat().st_size
    for changes in (
        {"status": FileStatus.FAILED},
        {"dev": None, "ino": None},  # a row from before inodes were recorded: refused
        {"ino": picture.stat().st_ino + 1},
        {"size": picture.stat().st_size + 1},
        {"mtime_ns": picture.stat().st_mtime_ns + 1},
    ):
        with pytest.raises(NotServable):
            open_indexed(_record(picture, **changes), roots)
    with pytest.raises(NotServable, match="outside"):
        open_indexed(_record(picture), Roots.of([str(tmp_path / "elsewhere")]))
    link = root / "link.png"
    link.symlink_to(picture)
    with pytest.raises(NotServable):  # even to a file inside the root, with its identity
        open_indexed(_record(picture, path=str(link)), roots)
    moved = tmp_path / "moved.png"
    shutil.copy2(picture, moved)
    (root / "sub").symlink_to(tmp_path, target_is_directory=True)
    via_folder_link = root / "sub" / "moved.png"
    with pytest.raises(NotServable, match="outside"):  # a linked folder leads out of the root
        open_indexed(_record(moved, path=str(via_folder_link)), roots)
    fifo = root / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(NotServable):
        open_indexed(_record(picture, path=str(fifo)), roots)
