"""`lbsearch index --ray` on a local Ray cluster started here (2 CPUs): the same library as a
local run, the same incremental behaviour, a killed encoder actor retried, a killed driver
leaving a consistent library. Marked `ray` (minutes, needs lbsearch[ray]): `pytest -m ray`."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import media_factory as mf
import numpy as np
import pytest
import ray
from ray import cloudpickle

from lbsearch.config import Config, load_config
from lbsearch.embedder import Encoding, open_embedder
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.indexers.progress import Finished
from lbsearch.indexers.ray import LanguageBindFactory, RayOptions, RayRunError
from lbsearch.indexers.ray.stage import check_shared
from lbsearch.library import Library
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.library import assert_library_consistent
from lbsearch.testing.samples import write_audio, write_sample_media
from lbsearch.types import MediaSpec, Modality, Segment

pytestmark = pytest.mark.ray
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fakes below travel to actors


@dataclasses.dataclass(frozen=True)
class Fakes:
    """Builds FakeEncoders in each actor; with `kill_marker`, the first actor to embed dies
    (SIGKILL, as an OOM kill would) unless the marker file exists, which it creates."""

    kill_marker: str = ""
    delay_s: float = 0.0

    def __call__(self) -> FakeEncoders:
        return _DiesOnce(self.kill_marker, self.delay_s)


class _DiesOnce(FakeEncoders):
    def __init__(self, marker: str, delay_s: float) -> None:
        super().__init__(delay_s=delay_s)
        self.marker = marker

    def embed_segments(self, modality: Modality, segments: Sequence[Segment]) -> np.ndarray:
        if self.marker and not Path(self.marker).exists():
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().embed_segments(modality, segments)


@dataclasses.dataclass(frozen=True)
class PoisonFakes:
    """Actors raise on every batch holding a file whose name contains `poison` (a bug, or an
    error the encoder cannot get past)."""

    def __call__(self) -> FakeEncoders:
        return _FailsOnPoison()


class _FailsOnPoison(FakeEncoders):
    def embed_segments(self, modality: Modality, segments: Sequence[Segment]) -> np.ndarray:
        if any("poison" in Path(s.path).name for s in segments):
            raise RuntimeError("the encoder cannot take this batch")
        return super().embed_segments(modality, segments)


class _Float16(FakeEncoders):
    def encoding(self, modality: Modality) -> Encoding:
        return Encoding("fake", "float16")


@dataclasses.dataclass(frozen=True)
class Float16Fakes:
    """Actors that resolve another dtype than the driver (a GPU node under dtype auto)."""

    def __call__(self) -> FakeEncoders:
        return _Float16()


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    context = ray.init(
        num_cpus=2,
        object_store_memory=300 * 2**20,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
    )
    yield str(context.address_info["address"])
    ray.shutdown()


def _config(base: Config) -> Config:
    # 2 s windows: the 12-13 s videos have 6 windows, decoded in parts of 2 (3 parts each)
    video = dataclasses.replace(base.video, segment_seconds=2.0)
    return dataclasses.replace(
        base, video=video, runtime=dataclasses.replace(base.runtime, batch_size=3)
    )


def _corpus(root: Path) -> Path:
    write_sample_media(root)
    mf.video(root / "long_with_sound.mp4", seconds=13.0, fps=10, gop=7, with_audio=True)
    mf.video(root / "silent.mp4", seconds=3.0, fps=10)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "empty.wav").write_bytes(b"")
    mf.truncate(root / "bouncing_ball.mp4", root / "cut.mp4", fraction=0.02)
    return root


def _ray(factory: object, **kw: object) -> RayOptions:
    return RayOptions(factory=factory, windows_per_part=2, **kw)  # type: ignore[arg-type]


def _index(
    library: Path, media: Path, encoders: object, config: Config, ray_options: RayOptions | None
) -> Finished:
    with Library.open(library, config=config, write=True) as lib:
        return run_index([media], lib, encoders, config, IndexOptions(ray=ray_options))  # type: ignore[arg-type]


Snapshot = dict[str, tuple[object, ...]]


def _snapshot(
    library: Path, config: Config
) -> tuple[Snapshot, dict[tuple[str, str, float], np.ndarray]]:
    """Every file (status, modality, reason, hash, duration, segment spans) and every vector."""
    files: Snapshot = {}
    vectors: dict[tuple[str, str, float], np.ndarray] = {}
    with Library.open(library, config=config) as lib:
        models = {m: s.model_id for m, s in lib.catalog.modality_states().items()}
        for record in lib.catalog.iter_files():
            spans: list[tuple[str, float, float]] = []
            for modality, model_id in models.items():
                if record.status.value != "indexed" or record.content_hash is None:
                    continue
                stored = lib.catalog.segments_for_hash(record.content_hash, modality, model_id)
                for segment in stored or ():
                    spans.append((modality.value, segment.start_s, segment.end_s))
                    vectors[(record.path, modality.value, segment.start_s)] = segment.vector
            files[record.path] = (
                record.status.value,
                record.modality,
                record.reason,
                record.content_hash,
                record.duration_s,
                tuple(sorted(spans)),
            )
    return files, vectors


def _assert_same_library(a: Path, b: Path, config: Config) -> None:
    files_a, vectors_a = _snapshot(a, config)
    files_b, vectors_b = _snapshot(b, config)
    assert files_a == files_b
    assert vectors_a.keys() == vectors_b.keys()
    for key, vector in vectors_a.items():
        cosine = float(vector @ vectors_b[key]) / float(
            np.linalg.norm(vector) * np.linalg.norm(vectors_b[key])
        )
        assert cosine >= 0.99999, key


def test_ray_run_builds_the_same_library_as_a_local_run(
    cluster: str, tmp_path: Path, tiny_config: Path
) -> None:
    config = _config(load_config(tiny_config))
    media = _corpus(tmp_path / "media")
    local = _index(tmp_path / "local", media, open_embedder(config), config, None)
    on_ray = _index(
        tmp_path / "ray",
        media,
        open_embedder(config),
        config,
        _ray(LanguageBindFactory(config)),
    )
    assert on_ray.counts == local.counts and on_ray.failures_by_reason == local.failures_by_reason
    assert on_ray.segments_embedded == local.segments_embedded
    assert local.counts.failed == 3 and local.counts.added == 9
    _assert_same_library(tmp_path / "local", tmp_path / "ray", config)
    files, _ = _snapshot(tmp_path / "ray", config)
    long_video = files[str(media / "long_with_sound.mp4")]
    assert [s for s in long_video[-1] if s[0] == "video"] == [  # type: ignore[union-attr]
        ("video", 2.0 * k, 2.0 * (k + 1) if k < 5 else pytest.approx(13.0, abs=0.2))
        for k in range(6)
    ]
    _consistent(tmp_path / "ray")


def test_incremental_runs_deletions_and_reuse_match_a_local_run(
    cluster: str, tmp_path: Path
) -> None:
    config = _config(Config())
    media = _corpus(tmp_path / "media")
    fake = _ray(Fakes())
    runs: list[tuple[Finished, Finished]] = []

    def both() -> None:
        local = _index(tmp_path / "local", media, FakeEncoders(), config, None)
        on_ray = _index(tmp_path / "ray", media, FakeEncoders(), config, fake)
        runs.append((local, on_ray))
        assert (on_ray.counts, on_ray.segments_embedded) == (local.counts, local.segments_embedded)
        _assert_same_library(tmp_path / "local", tmp_path / "ray", config)

    both()
    (media / "whistle.wav").unlink()
    shutil.copy(media / "sunset_beach.jpg", media / "copy_of_sunset.jpg")
    shutil.copy(media / "long_with_sound.mp4", media / "moved.mp4")
    (media / "long_with_sound.mp4").unlink()
    mf.image(media / "green_field.png", 48, 32, seed=5)
    write_audio(media / "new_tone.wav", seconds=2.0, tone_hz=300.0)
    both()
    second = runs[-1][1].counts
    assert (second.added, second.updated, second.reused, second.removed) == (3, 1, 2, 2)
    both()
    assert runs[-1][1].segments_embedded == 0 and runs[-1][1].counts.unchanged == 13


def test_a_killed_encoder_actor_is_replaced_and_its_batch_retried(
    cluster: str, tmp_path: Path
) -> None:
    config = _config(Config())
    media = _corpus(tmp_path / "media")
    marker = tmp_path / "killed"
    local = _index(tmp_path / "local", media, FakeEncoders(), config, None)
    on_ray = _index(tmp_path / "ray", media, FakeEncoders(), config, _ray(Fakes(str(marker))))
    assert marker.exists()  # an actor really died mid-run
    assert (on_ray.counts, on_ray.segments_embedded) == (local.counts, local.segments_embedded)
    _assert_same_library(tmp_path / "local", tmp_path / "ray", config)


def test_an_error_in_an_actor_stops_the_run_with_what_to_do(cluster: str, tmp_path: Path) -> None:
    config = _config(Config())
    media = _corpus(tmp_path / "media")
    mf.image(media / "poison.png", 32, 32)
    with pytest.raises(
        RayRunError, match=r"Ray run stopped: RuntimeError: the encoder cannot take this batch"
    ) as stopped:
        _index(tmp_path / "ray", media, FakeEncoders(), config, _ray(PoisonFakes()))
    assert "run again" in (stopped.value.hint or "")
    _consistent(tmp_path / "ray")
    done = _index(tmp_path / "ray", media, FakeEncoders(), config, None)  # a local run finishes
    assert done.counts.added > 0 and _indexed(tmp_path / "ray") == 10  # 9 + poison.png
    _consistent(tmp_path / "ray")


DRIVER = """
import dataclasses, sys
from pathlib import Path
from lbsearch.config import Config
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.indexers.ray import RayOptions
from lbsearch.library import Library
from lbsearch.testing.fake_encoders import FakeEncoders

@dataclasses.dataclass(frozen=True)
class Slow:
    def __call__(self):
        return FakeEncoders(delay_s=0.3)

if __name__ == "__main__":
    config = Config()
    config = dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, batch_size=2))
    options = IndexOptions(ray=RayOptions(factory=Slow(), address=sys.argv[3]))
    with Library.open(Path(sys.argv[1]), config=config, write=True) as lib:
        run_index([Path(sys.argv[2])], lib, FakeEncoders(), config, options)
"""


def _consistent(library: Path) -> int:
    return sum(assert_library_consistent(library, Config()).values())


def _indexed(library: Path) -> int:
    if not (library / "catalog.sqlite").exists():
        return 0
    with Library.open(library, config=Config()) as lib:
        return sum(1 for r in lib.catalog.iter_files() if r.status.value == "indexed")


def test_driver_killed_with_sigkill_leaves_a_library_the_next_run_completes(
    cluster: str, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    for i in range(30):
        write_audio(media / f"tone_{i:02d}.wav", seconds=1.0 + (i % 4), tone_hz=200.0 + 25 * i)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    library = tmp_path / "library"
    driver = subprocess.Popen([sys.executable, str(script), str(library), str(media), cluster])
    try:
        deadline = time.monotonic() + 240
        while _indexed(library) < 3 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert driver.poll() is None, "the driver finished (or failed) before it could be killed"
    finally:  # even when the poll fails: a live driver keeps the shared cluster's CPUs busy
        driver.kill()  # SIGKILL
        driver.wait(timeout=60)
    assert 3 <= _indexed(library) < 30
    _consistent(library)
    done = _index(library, media, FakeEncoders(), Config(), None)  # a local run completes it
    assert done.counts.failed == 0 and _indexed(library) == 30
    assert _consistent(library) == 30


def test_a_node_that_cannot_read_the_files_stops_with_what_to_do(
    cluster: str, tmp_path: Path
) -> None:
    with pytest.raises(RayRunError) as raised:
        check_shared(ray, str(tmp_path / "only-on-the-driver.jpg"))
    assert "cannot read this file" in str(raised.value)
    assert "same path on every node" in raised.value.hint


def test_actors_resolving_another_dtype_stop_before_any_vector_is_written(
    cluster: str, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    write_audio(media / "tone.wav", seconds=2.0, tone_hz=440.0)
    with pytest.raises(RayRunError) as raised:
        _index(tmp_path / "library", media, FakeEncoders(), Config(), _ray(Float16Fakes()))
    assert "fake/float16" in str(raised.value) and "--dtype float16" in raised.value.hint
    assert _indexed(tmp_path / "library") == 0


def test_jobs_submitted_one_by_one_come_back_embedded_in_waves(
    cluster: str, tmp_path: Path
) -> None:
    from lbsearch.indexers.ray.waves import RayEmbedding
    from lbsearch.media.pool import DecodeJob

    config = _config(Config())
    media = _corpus(tmp_path / "media")
    fake = FakeEncoders()
    files = sorted(p for p in media.rglob("*") if p.suffix in (".jpg", ".wav", ".mp4"))
    jobs = [DecodeJob(p, fake.media_spec(_modality(p)), tag=i) for i, p in enumerate(files)]
    embedding = RayEmbedding(_ray(Fakes()), config, fake, quiet_s=0.2)
    try:
        for job in jobs[:3]:
            embedding.submit(job)
        results = []
        while len(results) < len(jobs):
            if len(results) == 2:  # a second wave: jobs found while the first one runs
                for job in jobs[3:]:
                    embedding.submit(job)
            result = embedding.next(timeout=0.5)
            if result is not None:
                results.append(result)
    finally:
        embedding.close()
    assert sorted(r.job.tag for r in results) == list(range(len(jobs)))
    for result in results:
        path = files[result.job.tag]
        expected = _local(path, result.job.spec, config, fake)
        if isinstance(expected, str):
            assert result.error is not None and result.error.reason == expected
        else:
            assert result.error is None
            got = np.stack([s.vector for s in result.segments])
            assert [(s.start_s, s.end_s) for s in result.segments] == expected[0]
            np.testing.assert_allclose(got, expected[1], atol=1e-5)


def _modality(path: Path) -> Modality:
    return {".jpg": Modality.IMAGE, ".wav": Modality.AUDIO}.get(path.suffix, Modality.VIDEO)


def _local(path: Path, spec: MediaSpec, config: Config, fake: FakeEncoders):  # type: ignore[no-untyped-def]
    """(spans, vectors) of a local decode and embedding, or the reason code it fails with."""
    from lbsearch.errors import MediaError
    from lbsearch.media import decode

    try:
        segments = decode(path, spec, config)
    except MediaError as error:
        return error.reason
    return [(s.start_s, s.end_s) for s in segments], fake.embed_segments(spec.modality, segments)


def _kill_first_decode_worker(killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first Ray worker seen running a decode task (its title names the function)."""
    while not stop.is_set() and not killed:
        for proc in Path("/proc").iterdir():
            try:
                title = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if proc.name.isdigit() and title.startswith(b"ray::") and b"decode_rows" in title:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
                return
        time.sleep(0.005)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's workers through /proc")
def test_a_killed_decode_worker_is_replaced_and_its_task_retried(
    cluster: str, tmp_path: Path
) -> None:
    config = _config(Config())
    media = tmp_path / "media"
    media.mkdir()
    for i in range(6):
        mf.video(media / f"clip_{i}.mp4", seconds=16.0, fps=10, gop=7, seed=i)
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_decode_worker, args=(killed, stop))
    killer.start()
    try:
        on_ray = _index(tmp_path / "ray", media, FakeEncoders(), config, _ray(Fakes()))
    finally:
        stop.set()
        killer.join()
    assert killed, "no decode worker was caught running"
    local = _index(tmp_path / "local", media, FakeEncoders(), config, None)
    assert (on_ray.counts, on_ray.segments_embedded) == (local.counts, local.segments_embedded)
    _assert_same_library(tmp_path / "local", tmp_path / "ray", config)
