"""The server's one execution model for heavy work: a shared decode pool (lbsearch.media.shared_pool)
that outlives other pools in the process, refuses work past its bound, drops cancelled jobs, and
keeps a 121-megapixel upload out of the server's memory."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import index_folder, serving

from lbsearch.config import load_config
from lbsearch.media.pool import DecodeJob, DecodePool
from lbsearch.media.shared_pool import PoolBusy, SharedPool
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_sample_media


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("jobs") / "media"
    write_sample_media(folder)
    return folder


def _spec(path: Path) -> object:
    from lbsearch.media import classify

    modality = classify(path, load_config().classify)
    return FakeEncoders().media_spec(modality)


def test_the_shared_pool_outlives_another_pool_closed_beside_it(media: Path) -> None:
    """Closing a pool stopped the process-wide forkserver under a live one (two overlapping
    /api/embed requests deadlocked); a server's pool keeps decoding after another closes."""
    picture = media / "sunset_beach.jpg"
    shared = SharedPool(load_config(), max_jobs=4)
    try:
        assert shared.submit(picture, _spec(picture)).segments(timeout_s=60)  # type: ignore[arg-type]
        closed: list[bool] = []

        def other_pool() -> None:
            with DecodePool(load_config(), workers=1) as other:
                (result,) = list(other.imap([DecodeJob(picture, _spec(picture))]))  # type: ignore[arg-type]
                assert result.ok
            closed.append(True)

        beside = threading.Thread(target=other_pool, daemon=True)
        beside.start()
        beside.join(60)
        assert closed == [True], "closing the other pool hung (it stopped the forkserver)"
        done: list[int] = []
        worker = threading.Thread(
            target=lambda: done.append(
                len(shared.submit(picture, _spec(picture)).segments(timeout_s=30))  # type: ignore[arg-type]
            ),
            daemon=True,
        )
        worker.start()
        worker.join(40)
        assert done == [1], "the shared pool stopped working after the other pool closed"
    finally:
        shared.close()


def test_the_queue_is_bounded_and_cancelled_jobs_are_dropped(media: Path) -> None:
    picture = media / "sunset_beach.jpg"
    shared = SharedPool(load_config(), max_jobs=2)
    try:
        first = shared.submit(picture, _spec(picture))  # type: ignore[arg-type]
        second = shared.submit(picture, _spec(picture))  # type: ignore[arg-type]
        with pytest.raises(PoolBusy):
            shared.submit(picture, _spec(picture))  # type: ignore[arg-type]
        second.cancel()
        assert first.segments(timeout_s=60)
        deadline = time.monotonic() + 10
        while shared.busy and time.monotonic() < deadline:
            time.sleep(0.05)
        assert shared.busy == 0, "a finished and a cancelled job free their places"
        assert shared.submit(picture, _spec(picture)).segments(timeout_s=60)  # type: ignore[arg-type]
    finally:
        shared.close()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:  # noqa: PTH123 - a /proc file
        return int(statm.read().split()[1]) * resource.getpagesize()


@pytest.mark.slow
def test_a_121_megapixel_upload_is_decoded_outside_the_server(media: Path, tmp_path: Path) -> None:
    """The server runs in this process here: its memory must not grow by the picture's 363 MB
    while the upload is decoded (it was 0.7 -> 4.8 GB when decoded in the server)."""
    big = tmp_path / "big.png"
    code = (
        "import sys; from PIL import Image; "
        "Image.new('RGB', (11000, 11000), (30, 60, 90)).save(sys.argv[1], optimize=True)"
    )
    subprocess.run([sys.executable, "-c", code, str(big)], check=True, timeout=300)
    library = tmp_path / "library"
    index_folder(media, library, FakeEncoders())
    with serving(library) as run, httpx.Client(base_url=run.base, timeout=300) as http:
        http.get("/api/search", params={"q": "warm up"})
        before, peak, stop = _rss_bytes(), [0], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_bytes())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        answer = http.post("/api/search", files={"like": ("big.png", big.read_bytes())})
        stop.set()
        sampler.join()
        assert answer.status_code in (200, 422), answer.text
        searches = [http.get("/api/search", params={"q": "dog"}).status_code for _ in range(3)]
        assert searches == [200, 200, 200]
    assert peak[0] - before < 150 * 1024 * 1024, f"grew {(peak[0] - before) >> 20} MB"


class _Counting(FakeEncoders):
    """Slow fake encoders that count the segments they are asked to embed."""

    def __init__(self) -> None:
        super().__init__(delay_s=0.5)
        self.embedded = 0

    def embed_segments(self, modality: Any, segments: Any) -> Any:
        self.embedded += 1
        return super().embed_segments(modality, segments)


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_a_client_that_leaves_cancels_its_work(media: Path, tmp_path: Path) -> None:
    """12 pictures at 0.5 s each: the client gives up after 1 s; the server stops embedding
    (it went on for all 12 before)."""
    library = tmp_path / "library"
    index_folder(media, library, FakeEncoders())
    encoders = _Counting()
    picture = (media / "sunset_beach.jpg").read_bytes()
    files = [("file", (f"{i}.jpg", picture)) for i in range(12)]
    with serving(library, factory=lambda lib: encoders) as run:
        with httpx.Client(timeout=60) as warm:  # the pool's workers start with a first job
            assert warm.post(run.base + "/api/embed", files=files[:1]).status_code == 200
        encoders.embedded = 0
        with pytest.raises(httpx.TimeoutException), httpx.Client(timeout=1.0) as http:
            http.post(run.base + "/api/embed", files=files)
        time.sleep(7.0)  # all 12 would be done by now
        assert 0 < encoders.embedded < 12, encoders.embedded


_SLOW_PIDS = Path(tempfile.gettempdir()) / "lbsearch-test-slow-decode"


def slow_decode(path: Path, spec: Any, cfg: Any) -> list[Any]:
    """A decode that takes minutes (top-level: the pool's workers import it by name)."""
    (_SLOW_PIDS / str(os.getpid())).touch()
    time.sleep(600)
    return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_a_client_that_leaves_stops_its_running_decode(
    media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decode that would take minutes: the client hangs up once it runs, and the worker
    decoding its file is stopped within seconds (before, it decoded on until media.decode_timeout_s)."""
    from lbsearch.media import shared_pool

    class SlowPool(SharedPool):
        def __init__(self, config: Any, max_jobs: int, workers: int = 0) -> None:
            super().__init__(config, max_jobs, 1, decode_fn=slow_decode)

    monkeypatch.setattr(shared_pool, "SharedPool", SlowPool)
    shutil.rmtree(_SLOW_PIDS, ignore_errors=True)
    _SLOW_PIDS.mkdir()
    library = tmp_path / "library"
    index_folder(media, library, FakeEncoders())
    picture = (media / "sunset_beach.jpg").read_bytes()
    assert load_config().media.decode_timeout_s >= 60
    with serving(library, factory=lambda lib: FakeEncoders()) as run:
        request = httpx.Request(
            "POST", run.base + "/api/embed", files=[("file", ("a.jpg", picture))]
        )
        head = f"POST /api/embed HTTP/1.1\r\nHost: {request.url.netloc.decode()}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in request.headers.items() if k != "host")
        with socket.create_connection((request.url.host, request.url.port or 80)) as client:
            client.sendall(head.encode() + b"\r\n" + request.read())
            deadline = time.monotonic() + 60  # the pool's first worker starts (torch, PyAV)
            while not any(_SLOW_PIDS.iterdir()) and time.monotonic() < deadline:
                time.sleep(0.1)
            (pid,) = [int(p.name) for p in _SLOW_PIDS.iterdir()]
        left_at = time.monotonic()  # the client hung up while its file decodes
        while _alive(pid) and time.monotonic() - left_at < 10:
            time.sleep(0.1)
        assert not _alive(pid), "the worker still decodes the file of a client that left"
        assert time.monotonic() - left_at < 5
