"""DecodePool streaming: a long file's windows cross the pipe in parts, with bounded memory;
jobs can be added while decoding runs; no worker starts without a job; nothing left in /tmp."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import media_factory as mf
import pytest
import torch

from lbsearch.config import Config
from lbsearch.media import DecodeJob, DecodePool
from lbsearch.types import MediaSpec, Modality, Segment

CFG = Config()  # the packaged defaults; the user's settings never reach tests
pytestmark = pytest.mark.timeout(120)
WINDOWS = 40
WINDOW_SHAPE = (2, 1024, 1024)  # 8 MiB of float32 per window


def counting_decode(path: Path, spec: MediaSpec, cfg: Config) -> Iterator[Segment]:
    """A long 'video': WINDOWS big windows, each made counted in the file `path` names."""
    for i in range(WINDOWS):
        with path.open("a") as log:
            log.write("w\n")
        pixels = torch.full(WINDOW_SHAPE, float(i))
        yield Segment(str(path), Modality.VIDEO, 10.0 * i, 10.0 * (i + 1), pixels)


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_windows_stream_in_parts_and_a_slow_consumer_holds_the_worker_back(
    tmp_path: Path,
) -> None:
    log = tmp_path / "made.log"
    job = DecodeJob(log, MediaSpec(Modality.VIDEO))
    with DecodePool(CFG, workers=1, prefetch=1, decode_fn=counting_decode) as pool:
        results = pool.stream([job])
        first = next(results)
        assert not first.done and 0 < len(first.segments) < WINDOWS  # a part, not the file
        time.sleep(2.0)  # a slow encoder
        made = len(log.read_text().splitlines())
        assert made <= WINDOWS // 2, f"the worker ran ahead: {made} windows made"
        rest = list(results)
    segments = first.segments + [s for r in rest for s in r.segments]
    assert rest[-1].done and all(not r.done for r in rest[:-1])
    assert [s.start_s for s in segments] == [10.0 * i for i in range(WINDOWS)]
    assert all(float(s.pixels[0, 0, 0]) == i for i, s in enumerate(segments))


def test_imap_still_gives_whole_files(tmp_path: Path) -> None:
    job = DecodeJob(tmp_path / "made.log", MediaSpec(Modality.VIDEO))
    with DecodePool(CFG, workers=1, decode_fn=counting_decode) as pool:
        (result,) = list(pool.imap([job]))
    assert result.done and len(result.segments) == WINDOWS


def test_jobs_can_be_added_while_decoding_runs(tmp_path: Path) -> None:
    from lbsearch.media.pool import JobQueue

    images = [mf.image(tmp_path / f"{i}.png", 20, 20, seed=i) for i in range(3)]
    jobs = JobQueue()
    with DecodePool(CFG, workers=1) as pool:
        stream = pool.start(jobs)
        assert stream.get(timeout=0.3) is None and not stream.finished  # waits for jobs
        jobs.put(DecodeJob(images[0], MediaSpec(Modality.IMAGE), tag=0))
        first = None
        while first is None:
            first = stream.get(timeout=0.1)
        for i in (1, 2):
            jobs.put(DecodeJob(images[i], MediaSpec(Modality.IMAGE), tag=i))
        jobs.close()
        rest = []
        while (result := stream.get(timeout=30)) is not None:
            rest.append(result)
        assert stream.finished
    assert sorted(r.job.tag for r in [first, *rest]) == [0, 1, 2]


def test_a_freed_slot_or_a_new_job_wakes_the_dispatcher_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no room for finished results (prefetch 0), each file waits for the consumer to take
    the one before; each job arrives after the stream started. Taking a result and putting a
    job ring the dispatcher's bell: with its poll stretched to a minute, a missed ring would
    stall a file for that minute."""
    from lbsearch.media import pool as pool_module
    from lbsearch.media.pool import JobQueue

    monkeypatch.setattr(pool_module, "_POLL_S", 60.0)
    images = [mf.image(tmp_path / f"{i}.png", 20, 20, seed=i) for i in range(4)]
    jobs = JobQueue()
    started = time.monotonic()
    with DecodePool(CFG, workers=1, prefetch=0, timeout_s=0) as pool:
        stream = pool.start(jobs)
        for i, image in enumerate(images):
            jobs.put(DecodeJob(image, MediaSpec(Modality.IMAGE), tag=i))
            result = stream.get(timeout=45)
            assert result is not None and result.job.tag == i and result.ok
        jobs.close()
        assert stream.get(timeout=45) is None and stream.finished
    assert time.monotonic() - started < 40  # one missed ring alone takes 60 s


def test_a_pool_without_jobs_starts_no_process() -> None:
    with DecodePool(CFG, workers=2) as pool:
        assert list(pool.imap([])) == []
        assert pool._pool == []


SCRIPT = """
import os, sys
from pathlib import Path
from lbsearch.config import Config
from lbsearch.media import DecodeJob, DecodePool
from lbsearch.types import MediaSpec, Modality

if __name__ == "__main__":
    with DecodePool(Config(), workers=2) as pool:
        pool.decode(Path(sys.argv[1]), MediaSpec(Modality.IMAGE))
    left = sorted(n for n in os.listdir(os.environ["TMPDIR"]) if n.startswith("pymp-"))
    print("left:", left)
    os.kill(os.getpid(), 9)  # as if killed now: nothing may stay behind
"""


def test_nothing_is_left_in_the_temp_folder_after_the_pool(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    image = mf.image(tmp_path / "a.png", 20, 20)
    script = tmp_path / "pool_script.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(image)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    assert "left: []" in done.stdout, done.stdout + done.stderr
    time.sleep(0.5)  # the forkserver and workers notice their parent is gone
    assert [p.name for p in temp.iterdir()] == []
