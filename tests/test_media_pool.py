"""DecodePool: worker processes, per-file time limit, crashes, streaming, clean shutdown."""

from __future__ import annotations

import os
import time
from pathlib import Path

import media_factory as mf
import pytest
import torch

from lbsearch.config import Config
from lbsearch.errors import MediaError
from lbsearch.media import DecodeJob, DecodePool, decode, measure_throughput
from lbsearch.types import MediaSpec, Modality, Segment

CFG = Config()  # the packaged defaults; the user's settings never reach tests
pytestmark = pytest.mark.timeout(120)


# Replacement decoders: top-level so that worker processes can import them by name.
def sleepy_decode(path: Path, spec: MediaSpec, cfg: Config) -> list[Segment]:
    if "hang" in path.name:
        time.sleep(600)  # a decoder stuck in native code, as far as the pool can tell
    return decode(path, spec, cfg)


def crashing_decode(path: Path, spec: MediaSpec, cfg: Config) -> list[Segment]:
    if "crash" in path.name:
        os._exit(11)  # like a segfault in FFmpeg: no exception, the process is just gone
    return decode(path, spec, cfg)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, MediaSpec]]:
    d = tmp_path_factory.mktemp("pool")
    return [
        (mf.image(d / "a.png", 40, 30), MediaSpec(Modality.IMAGE)),
        (mf.video(d / "v.mp4", 12.0, fps=5, with_audio=True), MediaSpec(Modality.VIDEO)),
        (d / "v.mp4", MediaSpec(Modality.AUDIO)),
        (mf.audio(d / "s.flac", 3.0, 44100, 2), MediaSpec(Modality.AUDIO)),
        (mf.depth_png(d / "d.png", 30, 20), MediaSpec(Modality.DEPTH)),
        (d / "missing.jpg", MediaSpec(Modality.IMAGE)),
    ]


def test_results_match_direct_decoding(files: list[tuple[Path, MediaSpec]]) -> None:
    jobs = [DecodeJob(p, s, tag=i) for i, (p, s) in enumerate(files)]
    with DecodePool(CFG, workers=2) as pool:
        results = sorted(pool.imap(jobs), key=lambda r: r.job.tag)
    assert [r.job.tag for r in results] == list(range(len(files)))
    for (path, spec), result in zip(files, results, strict=True):
        if not path.exists():
            assert result.error is not None and result.error.reason == "not_found"
            continue
        assert result.ok, result.error
        direct = decode(path, spec, CFG)
        assert len(direct) == len(result.segments)
        for a, b in zip(direct, result.segments, strict=True):
            assert (a.path, a.modality, a.start_s, a.end_s) == (
                b.path,
                b.modality,
                b.start_s,
                b.end_s,
            )
            assert torch.equal(a.pixels, b.pixels)


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_timeout_kills_the_worker_and_the_pool_goes_on(
    files: list[tuple[Path, MediaSpec]], tmp_path: Path
) -> None:
    hang = mf.image(tmp_path / "hang.png", 10, 10)
    jobs = [DecodeJob(hang, MediaSpec(Modality.IMAGE))]
    jobs += [DecodeJob(p, s) for p, s in files[:2]]
    started = time.monotonic()
    with DecodePool(CFG, workers=1, timeout_s=1.5, decode_fn=sleepy_decode) as pool:
        results = {r.job.path.name: r for r in pool.imap(jobs)}
        assert results["hang.png"].error is not None
        assert results["hang.png"].error.reason == "decode_timeout"
        assert results["a.png"].ok and results["v.mp4"].ok  # handled by a fresh worker
        assert pool.decode(files[0][0], files[0][1])  # and the pool is still usable
    assert time.monotonic() - started < 60


def test_crashed_worker_is_reported_and_replaced(tmp_path: Path) -> None:
    crash = mf.image(tmp_path / "crash.png", 10, 10)
    fine = mf.image(tmp_path / "fine.png", 10, 10)
    jobs = [DecodeJob(p, MediaSpec(Modality.IMAGE)) for p in (crash, fine, crash, fine)]
    with DecodePool(CFG, workers=2, decode_fn=crashing_decode) as pool:
        reasons = sorted(r.error.reason if r.error else "ok" for r in pool.imap(jobs))
    assert reasons == ["decoder_crashed", "decoder_crashed", "ok", "ok"]


def test_bounded_streaming_and_early_exit(files: list[tuple[Path, MediaSpec]]) -> None:
    jobs_read = []

    def jobs():  # type: ignore[no-untyped-def]
        for i in range(40):
            jobs_read.append(i)
            yield DecodeJob(files[0][0], files[0][1], tag=i)

    with DecodePool(CFG, workers=1, prefetch=1) as pool:
        stream = pool.imap(jobs())
        first = next(stream)
        time.sleep(0.5)  # a slow consumer: the pool must not run ahead
        assert first.ok and len(jobs_read) <= 1 + pool.capacity
        stream.close()  # leave early
        again = list(pool.imap([DecodeJob(files[0][0], files[0][1])]))
        assert len(again) == 1 and again[0].ok


def test_decode_raises_media_error_and_close_stops_workers(
    files: list[tuple[Path, MediaSpec]],
) -> None:
    pool = DecodePool(CFG, workers=2)
    with pytest.raises(MediaError) as info:
        pool.decode(files[-1][0], files[-1][1])
    assert info.value.reason == "not_found"
    processes = [w.proc for w in pool._pool]
    pool.close()
    pool.close()  # idempotent
    assert processes and not any(p.is_alive() for p in processes)
    with pytest.raises(RuntimeError):
        list(pool.imap([]))


def test_measure_throughput(files: list[tuple[Path, MediaSpec]]) -> None:
    video_path, spec = files[1]
    in_process = measure_throughput([video_path], spec, CFG, workers=0, repeats=2)
    assert in_process.files == 2 and in_process.failed == 0
    assert in_process.media_seconds == pytest.approx(24.0)
    assert in_process.media_seconds_per_second > 0
    pooled = measure_throughput([video_path, files[-1][0]], spec, CFG, workers=1)
    assert pooled.failed == 1 and pooled.reasons == {"not_found": 1}


def test_odd_file_names_cross_the_process_boundary(tmp_path: Path) -> None:
    name = os.fsdecode(b"new\nline \xff\xfe \xc3\xbc.png")  # a newline and undecodable bytes
    path = mf.image(tmp_path / name, 12, 12)
    with DecodePool(CFG, workers=1) as pool:
        (seg,) = pool.decode(path, MediaSpec(Modality.IMAGE))
    assert seg.path == str(path)
