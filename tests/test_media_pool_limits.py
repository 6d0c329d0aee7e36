"""Decode workers: a cancelled job's worker stops at once; a worker's memory is capped."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import media_factory as mf
import numpy as np
import pytest

from lbsearch.config import Config
from lbsearch.media import DecodeJob, DecodePool, decode
from lbsearch.media.shared_pool import SharedPool
from lbsearch.types import MediaSpec, Modality, Segment

pytestmark = pytest.mark.timeout(120)
LONG_LIMIT = 60.0  # seconds: far past what any test here waits


def _config(timeout_s: float = LONG_LIMIT, memory_mb: int = 0) -> Config:
    base = Config()
    media = replace(base.media, decode_timeout_s=timeout_s, max_worker_memory_mb=memory_mb)
    return replace(base, media=media)


# Replacement decoders: top-level so that worker processes can import them by name.
def slow_decode(path: Path, spec: MediaSpec, cfg: Config) -> list[Segment]:
    if "slow" in path.name:
        Path(f"{path}.pid").write_text(str(os.getpid()))
        time.sleep(600)  # a long video, as far as the pool can tell
    return decode(path, spec, cfg)


def greedy_decode(path: Path, spec: MediaSpec, cfg: Config) -> list[Segment]:
    if "greedy" in path.name:  # a hostile file: the decoder believes it needs 8 GB
        # np.empty maps the pages without touching them: without a cap it "succeeds" (and the
        # test fails) without costing the test machine 8 GB
        np.empty(8 << 30, dtype=np.uint8)
        return []
    return decode(path, spec, cfg)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _pid_of(path: Path) -> int:
    marker = Path(f"{path}.pid")
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return int(marker.read_text())


def test_a_cancelled_running_decode_stops_its_worker_at_once(tmp_path: Path) -> None:
    """Before, cancelling only dropped the results: the worker decoded on until its time limit
    (60 s here)."""
    slow = mf.image(tmp_path / "slow.png", 40, 30)
    fine = mf.image(tmp_path / "fine.png", 40, 30)
    shared = SharedPool(_config(), max_jobs=2, workers=1, decode_fn=slow_decode)
    try:
        ticket = shared.submit(slow, MediaSpec(Modality.IMAGE))
        pid = _pid_of(slow)
        assert _alive(pid)
        cancelled_at = time.monotonic()
        ticket.cancel()
        while _alive(pid) and time.monotonic() - cancelled_at < 10:
            time.sleep(0.05)
        stopped_after = time.monotonic() - cancelled_at
        assert not _alive(pid), "the worker still decodes a cancelled job"
        assert stopped_after < 3, stopped_after
        assert list(ticket.parts()) == []
        # the pool goes on with a fresh worker, and the cancelled job's place is free
        assert len(shared.submit(fine, MediaSpec(Modality.IMAGE)).segments(timeout_s=60)) == 1
        assert shared.busy == 0
    finally:
        shared.close()


def test_the_callers_event_cancels_a_waiting_reader_and_its_worker(tmp_path: Path) -> None:
    """The web service hands its client-disconnected event to `submit`: the reader blocked in
    `parts()` returns and the worker stops, without waiting for a part that never comes."""
    slow = mf.image(tmp_path / "slow.png", 40, 30)
    shared = SharedPool(_config(), max_jobs=2, workers=1, decode_fn=slow_decode)
    gone = threading.Event()
    try:
        ticket = shared.submit(slow, MediaSpec(Modality.IMAGE), gone)
        pid = _pid_of(slow)
        read: list[object] = []
        reader = threading.Thread(target=lambda: read.append(list(ticket.parts())), daemon=True)
        reader.start()
        gone.set()  # the client disconnected
        reader.join(5)
        assert read == [[]], "the reader still waits for the cancelled job"
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:
        shared.close()


def test_a_decode_past_the_memory_limit_is_out_of_memory(tmp_path: Path) -> None:
    """An 8 GB allocation in a worker capped at 1 GB fails as "out_of_memory" (before, nothing
    capped it: the pool took it, or the machine swapped); the worker keeps decoding."""
    greedy = mf.image(tmp_path / "greedy.png", 40, 30)
    fine = mf.image(tmp_path / "fine.png", 40, 30)
    jobs = [DecodeJob(p, MediaSpec(Modality.IMAGE), tag=p.name) for p in (greedy, fine)]
    with DecodePool(_config(memory_mb=1024), workers=1, decode_fn=greedy_decode) as pool:
        results = {r.job.tag: r for r in pool.imap(jobs)}
    failed = results["greedy.png"].error
    assert failed is not None and failed.reason == "out_of_memory", failed
    assert "max_worker_memory_mb" in failed.hint
    assert results["fine.png"].ok


def test_the_default_memory_limit_leaves_real_files_alone(tmp_path: Path) -> None:
    video = mf.video(tmp_path / "v.mp4", 12.0, fps=5, with_audio=True)
    assert Config().media.max_worker_memory_mb == 4096
    with DecodePool(Config(), workers=1) as pool:
        assert pool.decode(video, MediaSpec(Modality.VIDEO))
