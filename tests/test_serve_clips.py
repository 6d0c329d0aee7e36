"""GET /api/files/{id}/clip: a moment of an indexed video or audio file as a download, cut in the
shared decode pool (never in the server's process), with its input checked (400/422, never 500),
its length capped, a busy pool answered 503 with Retry-After, and a client that leaves stopping
its worker."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import Running, index_folder, serving

from lbsearch.cli.serve import clips
from lbsearch.config import load_config
from lbsearch.errors import MediaError
from lbsearch.library import Library
from lbsearch.media import clip as clip_module
from lbsearch.media.clip_task import ClipAnswer, ClipTask
from lbsearch.media.indexed import Roots
from lbsearch.media.shared_pool import PoolBusy, SharedPool
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_audio, write_sample_media, write_video


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("clips")
    write_sample_media(base / "media")
    write_video(base / "media" / "long walk é.mp4", seconds=32.0)
    write_audio(base / "media" / "long_tone.wav", seconds=32.0, tone_hz=440.0)
    index_folder(base / "media", base / "library", FakeEncoders())
    return base / "library"


@pytest.fixture(scope="module")
def running(library: Path) -> Iterator[Running]:
    with serving(library) as run:
        yield run


def file_ids(library: Path) -> dict[str, int]:
    with Library.open(library) as lib:
        found = {}
        for file_id in range(1, 100):
            record = lib.file_by_id(file_id)
            if record is not None:
                found[Path(record.path).name] = file_id
        return found


def probe(data: bytes) -> tuple[float, bool, bool]:
    """(duration in seconds, has a picture, has sound) of a clip."""
    import av

    with av.open(io.BytesIO(data)) as box:
        duration = float(box.duration or 0) / 1_000_000
        return duration, bool(box.streams.video), bool(box.streams.audio)


def test_a_video_moment_downloads_as_an_mp4_named_after_file_and_span(
    running: Running, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("the clip was cut in the server's process")

    monkeypatch.setattr(clip_module, "cut_opened", not_here)  # the worker has its own copy
    file_id = file_ids(library)["long walk é.mp4"]
    with httpx.Client(base_url=running.base, timeout=120) as http:
        got = http.get(f"/api/files/{file_id}/clip", params={"start": "10", "end": "20"})
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "video/mp4"
    disposition = got.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="long walk __0010.0-0020.0.mp4"')  # é: _
    assert "filename*=UTF-8''long%20walk%20%C3%A9_0010.0-0020.0.mp4" in disposition
    assert got.headers["cross-origin-resource-policy"] == "same-origin"
    assert got.headers["x-content-type-options"] == "nosniff"
    duration, picture, sound = probe(got.content)
    assert picture and sound
    assert duration == pytest.approx(10.0, abs=0.1)


def test_padding_widens_the_clip_and_a_sound_file_gives_m4a(
    running: Running, library: Path
) -> None:
    file_id = file_ids(library)["long_tone.wav"]
    with httpx.Client(base_url=running.base, timeout=120) as http:
        got = http.get(
            f"/api/files/{file_id}/clip", params={"start": "5.5", "end": "8", "pad": "1"}
        )
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "audio/mp4"
    assert 'filename="long_tone_0005.5-0008.0.m4a"' in got.headers["content-disposition"]
    duration, picture, sound = probe(got.content)
    assert sound and not picture
    assert duration == pytest.approx(4.5, abs=0.1)


BAD_SPANS = [
    ({}, 400),
    ({"start": "1"}, 400),
    ({"end": "1"}, 400),
    ({"start": "abc", "end": "2"}, 400),
    ({"start": "-1", "end": "2"}, 400),
    ({"start": "1e3", "end": "2e3"}, 400),
    ({"start": "nan", "end": "2"}, 400),
    ({"start": "0", "end": "inf"}, 400),
    ({"start": "²", "end": "2"}, 400),
    ({"start": "9" * 5000, "end": "2"}, 400),
    ({"start": "0.1234567", "end": "2"}, 400),
    ({"start": "2", "end": "2"}, 400),
    ({"start": "3", "end": "2"}, 400),
    ({"start": "0", "end": "2", "pad": "-1"}, 400),
    ({"start": "0", "end": "2", "pad": "x"}, 400),
    ({"start": "0", "end": "61"}, 400),  # longer than [serve] max_clip_s
    ({"start": "0", "end": "20", "pad": "41"}, 400),  # padding counts: 61 s
    ({"start": "30", "end": "40"}, 422),  # past the end of a 32 s file
    ({"start": "0", "end": "1", "start ": "2"}, 200),  # an unknown field is ignored
]


@pytest.mark.parametrize(("params", "status"), BAD_SPANS)
def test_bad_spans_are_400_or_422_with_the_json_error_shape(
    running: Running, library: Path, params: dict[str, str], status: int
) -> None:
    file_id = file_ids(library)["long walk é.mp4"]
    with httpx.Client(base_url=running.base, timeout=120) as http:
        got = http.get(f"/api/files/{file_id}/clip", params=params)
    assert got.status_code == status, got.text[:300]
    if status != 200:
        body = got.json()
        assert body["error"] and "hint" in body, body


def test_twice_given_values_and_pictures_are_refused(running: Running, library: Path) -> None:
    ids = file_ids(library)
    with httpx.Client(base_url=running.base, timeout=60) as http:
        twice = http.get(f"/api/files/{ids['long_tone.wav']}/clip?start=1&start=2&end=3")
        picture = http.get(f"/api/files/{ids['sunset_beach.jpg']}/clip?start=0&end=1")
        missing = http.get("/api/files/999999/clip?start=0&end=1")
    assert twice.status_code == 400 and "given 2 times" in twice.json()["error"]
    assert picture.status_code == 400 and "not a video or audio" in picture.json()["error"]
    assert missing.status_code == 404


def test_a_full_pool_is_503_with_retry_after(
    running: Running, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(self: SharedPool, *args: object, **kwargs: object) -> None:
        raise PoolBusy("8 files are being decoded already", "try again shortly")

    monkeypatch.setattr(SharedPool, "submit", busy)
    file_id = file_ids(library)["long_tone.wav"]
    with httpx.Client(base_url=running.base, timeout=60) as http:
        got = http.get(f"/api/files/{file_id}/clip", params={"start": "0", "end": "2"})
    assert got.status_code == 503
    assert int(got.headers["retry-after"]) > 0 and got.json()["error"]


def test_the_clip_limit_comes_from_the_config(library: Path) -> None:
    config = load_config()
    shorter = dataclasses.replace(config, serve=dataclasses.replace(config.serve, max_clip_s=5.0))
    file_id = file_ids(library)["long_tone.wav"]
    with serving(library, config=shorter) as run, httpx.Client(timeout=60) as http:
        long = http.get(run.base + f"/api/files/{file_id}/clip?start=0&end=6")
        fine = http.get(run.base + f"/api/files/{file_id}/clip?start=0&end=5")
    assert long.status_code == 400 and "5 s at most" in long.json()["error"]
    assert fine.status_code == 200


# ------------------------------------------------------------------ a client that leaves

_SLOW_PIDS = Path(tempfile.gettempdir()) / "lbsearch-test-slow-clip"


@dataclass(frozen=True)
class SlowClip(ClipTask):
    """A cut that takes minutes (top-level: the pool's workers import it by name)."""

    def run(self, cfg: Any) -> bytes:
        (_SLOW_PIDS / str(os.getpid())).touch()
        time.sleep(600)
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_client_that_leaves_stops_its_cut(library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clips, "ClipTask", SlowClip)
    shutil.rmtree(_SLOW_PIDS, ignore_errors=True)
    _SLOW_PIDS.mkdir()
    file_id = file_ids(library)["long_tone.wav"]
    with serving(library) as run:
        host, port = run.base.removeprefix("http://").split(":")
        head = (
            f"GET /api/files/{file_id}/clip?start=0&end=2 HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
        )
        with socket.create_connection((host, int(port))) as client:
            client.sendall(head.encode())
            deadline = time.monotonic() + 60  # the pool's first worker starts (torch, PyAV)
            while not any(_SLOW_PIDS.iterdir()) and time.monotonic() < deadline:
                time.sleep(0.1)
            (pid,) = [int(p.name) for p in _SLOW_PIDS.iterdir()]
        left_at = time.monotonic()
        while _alive(pid) and time.monotonic() - left_at < 10:
            time.sleep(0.1)
        assert not _alive(pid), "the worker still cuts the clip of a client that left"
        assert time.monotonic() - left_at < 5


# ---------------------------------------------------------------- the service's access rules

TOKEN = "clip-test-token-0123456789"


def test_other_sites_and_clients_without_the_token_get_no_clip(
    running: Running, library: Path
) -> None:
    file_id = file_ids(library)["long_tone.wav"]
    url = f"/api/files/{file_id}/clip?start=0&end=1"
    with httpx.Client(base_url=running.base, timeout=60) as http:
        for site in ("cross-site", "same-site"):
            assert http.get(url, headers={"Sec-Fetch-Site": site}).status_code == 403
        origin = http.get(url, headers={"Origin": "http://evil.example"})
        assert origin.status_code == 403
    with serving(library, token=TOKEN) as run, httpx.Client(base_url=run.base, timeout=60) as http:
        assert http.get(url).status_code == 401
        allowed = http.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code == 200, allowed.text[:200]
        assert allowed.headers["cross-origin-resource-policy"] == "same-origin"


def test_the_worker_opens_and_checks_the_file_again(library: Path, tmp_path: Path) -> None:
    """ClipTask as a decode worker runs it: a file that changed since the server's check is
    refused there ("vanished"); an end past the file's is an answer, not a broken file."""
    file_id = file_ids(library)["long_tone.wav"]
    with Library.open(library) as lib:
        record = lib.file_by_id(file_id)
        roots = Roots.of(lib.roots())
    assert record is not None and record.ino is not None
    config = load_config()
    swapped = dataclasses.replace(record, ino=record.ino + 1)
    with pytest.raises(MediaError) as caught:
        ClipTask(swapped, roots, 0, 1, 0, str(tmp_path / "a.m4a")).run(config)
    assert caught.value.reason == "vanished"
    assert not (tmp_path / "a.m4a").exists()
    done = ClipAnswer.parse(ClipTask(record, roots, 1, 3, 0, str(tmp_path / "b.m4a")).run(config))
    assert (done.start_s, done.end_s, done.audio, done.error) == (1, 3, "aac", None)
    assert probe((tmp_path / "b.m4a").read_bytes())[0] == pytest.approx(2.0, abs=0.05)
    past = ClipAnswer.parse(ClipTask(record, roots, 1, 99, 0, str(tmp_path / "c.m4a")).run(config))
    assert past.error is not None and "past the end" in past.error
