"""Pieces of `index --ray` that need no Ray: long videos decoded in parts, the driver's row
collector, the missing-install message. The cluster tests are in test_index_ray.py (-m ray)."""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import math
import os
import time
from pathlib import Path

import media_factory as mf
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lbsearch.cli.main import app
from lbsearch.config import Config, load_config
from lbsearch.errors import UsageError
from lbsearch.indexers.ray.rows import PartsCollector, TargetJob
from lbsearch.media import decode
from lbsearch.media.ranges import PartSpec, decode_part, split_ranges
from lbsearch.types import MediaSpec, Modality

CONFIG = Config()
SPEC = MediaSpec(Modality.VIDEO, image_size=32, num_frames=4)


def _config(segment_s: float, max_segments: int = 360):  # type: ignore[no-untyped-def]
    video = dataclasses.replace(CONFIG.video, segment_seconds=segment_s, max_segments=max_segments)
    return dataclasses.replace(CONFIG, video=video)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("video")
    return mf.video(folder / "long.mp4", seconds=13.0, fps=10, gop=7)


@pytest.mark.parametrize(
    ("segment_s", "max_segments", "part_s"), [(1.0, 360, 3.0), (2.0, 360, 5.0), (1.0, 4, 2.0)]
)
def test_parts_together_decode_exactly_like_the_whole_file(
    long_video: Path, segment_s: float, max_segments: int, part_s: float
) -> None:
    cfg = _config(segment_s, max_segments)
    whole = decode(long_video, SPEC, cfg)
    ranges = split_ranges(long_video, part_s)
    assert len(ranges) == math.ceil(13.0 / part_s) and ranges[-1][1] == math.inf
    parts = [
        decode_part(long_video, PartSpec(**dataclasses.asdict(SPEC), from_s=a, to_s=b), cfg)
        for a, b in ranges
    ]
    assert sum(1 for p in parts if p) > 1  # the file really was split
    joined = [s for part in parts for s in part]
    assert [(s.start_s, s.end_s) for s in joined] == [(s.start_s, s.end_s) for s in whole]
    for a, b in zip(joined, whole, strict=True):
        assert torch.equal(a.pixels, b.pixels)


def test_a_part_past_the_end_is_empty_and_a_plain_spec_decodes_whole(long_video: Path) -> None:
    cfg = _config(1.0)
    past = PartSpec(**dataclasses.asdict(SPEC), from_s=60.0, to_s=math.inf)
    assert decode_part(long_video, past, cfg) == []
    assert len(decode_part(long_video, SPEC, cfg)) == 13


def test_split_without_a_readable_header_gives_one_range(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    assert split_ranges(junk, 5.0) == [(0.0, math.inf)]


def _row(key: int, part: int, parts: int, count: int, start: float = 0.0, **kw: object):  # type: ignore[no-untyped-def]
    row = {"key": key, "part": part, "parts": parts, "count": count, "start": start}
    row |= {"end": start + 1, "vector": np.ones(4, np.float32), "reason": "", "detail": ""}
    return row | {"hint": "", "node": "n1"} | kw


def test_collector_waits_for_every_part_and_orders_segments() -> None:
    jobs = {
        0: TargetJob(0, "/m/v.mp4", Modality.VIDEO),
        1: TargetJob(1, "/m/a.jpg", Modality.IMAGE),
    }
    ids = {Modality.VIDEO: "fake/video", Modality.IMAGE: "fake/image"}
    collector = PartsCollector(jobs, ids)
    assert collector.add(_row(0, 1, 3, 2, start=20.0)) is None
    assert collector.add(_row(1, 0, 1, 1)) is not None  # another target completes meanwhile
    assert collector.add(_row(0, 2, 3, 0, vector=np.zeros(0))) is None  # an empty part
    assert collector.add(_row(0, 0, 3, 1, start=0.0)) is None
    done = collector.add(_row(0, 1, 3, 2, start=10.0))
    assert done is not None and done.error is None
    assert [s.start_s for s in done.segments] == [0.0, 10.0, 20.0]
    assert {s.model_id for s in done.segments} == {"fake/video"} and collector.pending == 0


def test_collector_reports_the_earliest_failing_part_and_empty_videos() -> None:
    jobs = {
        0: TargetJob(0, "/m/v.mp4", Modality.VIDEO),
        1: TargetJob(1, "/m/w.mp4", Modality.VIDEO),
    }
    collector = PartsCollector(jobs, {Modality.VIDEO: "fake/video"})
    collector.add(_row(0, 1, 2, 0, reason="corrupt", detail="late"))
    done = collector.add(_row(0, 0, 2, 0, reason="truncated", detail="early", node="n7"))
    assert done is not None and done.error is not None
    assert (done.error.reason, done.error.detail, done.node) == ("truncated", "early", "n7")
    collector.add(_row(1, 0, 2, 0, vector=np.zeros(0)))
    empty = collector.add(_row(1, 1, 2, 0, vector=np.zeros(0)))
    assert empty is not None and empty.error is not None
    assert empty.error.reason == "no_video_frames"


def _without_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_ray_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from lbsearch.indexers.ray import import_ray

    _without_ray(monkeypatch)
    with pytest.raises(UsageError) as raised:
        import_ray()
    assert "pip install 'lbsearch[ray]'" in str(raised.value)
    (tmp_path / "media").mkdir()
    result = CliRunner().invoke(
        app,
        ["index", str(tmp_path / "media"), "--library", str(tmp_path / "lib"), "--ray", "local"],
    )
    assert result.exit_code == 2, result.output
    assert "lbsearch[ray]" in result.output
    assert not (tmp_path / "lib").exists()  # refused before the library was created


def test_ray_reports_no_usage_statistics_unless_the_user_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray sends usage statistics to its developers by default; a run of lbsearch does not."""
    from lbsearch.indexers.ray import import_ray

    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED", raising=False)
    with contextlib.suppress(UsageError):  # Ray not installed: the setting is made all the same
        import_ray()
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "1")  # the user's own choice stands
    with contextlib.suppress(UsageError):
        import_ray()
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "1"


def test_a_worker_missing_a_file_this_machine_reads_stops_the_run(tmp_path: Path) -> None:
    from lbsearch.indexers.ray import RayRunError
    from lbsearch.indexers.ray.driver import check_seen
    from lbsearch.indexers.ray.rows import Embedded
    from lbsearch.media.reasons import media_error

    here = tmp_path / "here.jpg"
    here.write_bytes(b"x")
    missing = media_error(here, "not_found", "no such file")
    with pytest.raises(RayRunError) as raised:
        check_seen(Embedded(TargetJob(0, str(here), Modality.IMAGE), [], missing, "node-7"))
    assert "node-7" in str(raised.value) and str(here) in str(raised.value)
    assert "same path on every node" in raised.value.hint
    gone = TargetJob(1, str(tmp_path / "gone.jpg"), Modality.IMAGE)  # deleted meanwhile: a failure
    check_seen(Embedded(gone, [], media_error(gone.path, "not_found", "no such file"), "node-7"))
    corrupt = media_error(here, "corrupt", "bad")  # any other reason is the file's own
    check_seen(Embedded(TargetJob(2, str(here), Modality.IMAGE), [], corrupt, "node-7"))


def test_ray_settings_come_from_index_config_and_flags_override_them(tmp_path: Path) -> None:
    from lbsearch.indexers.ray import RayOptions, ray_options_from

    factory = object()
    assert ray_options_from(CONFIG, factory) is None  # type: ignore[arg-type]  # default: local run
    path = tmp_path / "config.toml"
    path.write_text('[index]\nray = "auto"\nray_actors = 3\nray_gpus_per_actor = 0.5\n')
    config = load_config(path)
    options = ray_options_from(config, factory)  # type: ignore[arg-type]
    assert options == RayOptions(factory, "auto", 3, 0.5, 1.0)  # type: ignore[arg-type]
    flags = ray_options_from(config, factory, "head:6379", actors=1, decode_cpus=2)  # type: ignore[arg-type]
    assert flags == RayOptions(factory, "head:6379", 1, 0.5, 2.0)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        ray_options_from(config, factory, decode_cpus=0)  # type: ignore[arg-type]


class _Cluster:
    """What actor_plan asks of Ray: resources and nodes."""

    def __init__(self, cpus: float, gpus: float = 0, nodes: int = 1) -> None:
        self.resources = {"CPU": cpus, "GPU": gpus}
        self.count = nodes

    def cluster_resources(self) -> dict[str, float]:
        return self.resources

    def nodes(self) -> list[dict[str, object]]:
        return [{"Alive": True, "Resources": {"CPU": 1}}] * self.count


def test_every_modality_pool_fits_the_cluster() -> None:
    from lbsearch.indexers.ray import RayOptions, RayRunError
    from lbsearch.indexers.ray.stage import ActorPlan, actor_plan

    cpu = RayOptions(factory=object())  # type: ignore[arg-type]
    # CPU actors reserve a share of what decoding leaves, but run a thread per core of their
    # node: the pools' actors take turns (test_cpu_actors_take_turns_on_a_machine)
    assert actor_plan(_Cluster(2), cpu, pools=3) == ActorPlan(1, 1 / 3, 0.0, 2, True)
    assert actor_plan(_Cluster(2), cpu, pools=1) == ActorPlan(1, 1.0, 0.0, 2, True)
    assert actor_plan(_Cluster(64, nodes=4), cpu, pools=2) == ActorPlan(4, 7.0, 0.0, 16, True)
    # more actors than nodes: each takes its share of a node's cores, and they run side by side
    two_per_node = RayOptions(factory=object(), actors=8)  # type: ignore[arg-type]
    assert actor_plan(_Cluster(64, nodes=4), two_per_node, pools=1) == ActorPlan(
        8, 7.0, 0.0, 8, False
    )
    gpu = RayOptions(factory=object(), gpus_per_actor=1)  # type: ignore[arg-type]
    one_gpu = actor_plan(_Cluster(16, gpus=1), gpu, pools=3)
    assert (one_gpu.actors, one_gpu.gpus) == (1, pytest.approx(1 / 3))  # the pools share it
    assert not one_gpu.take_turns
    assert actor_plan(_Cluster(96, gpus=8), gpu, pools=2).actors == 4
    assert actor_plan(_Cluster(96, gpus=8), gpu, pools=2).gpus == 1.0
    with pytest.raises(RayRunError, match="GPUs"):
        actor_plan(_Cluster(16), gpu, pools=1)


def test_cpu_actors_take_turns_on_a_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two actors (threads here; the lock is a file, so processes too) never encode at once."""
    import tempfile
    import threading

    from lbsearch.indexers.ray.actors import machine_turn

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the lock file goes here

    inside, most, lock = 0, 0, threading.Lock()

    def encode() -> None:
        nonlocal inside, most
        for _ in range(5):
            with machine_turn():
                with lock:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.01)
                with lock:
                    inside -= 1

    workers = [threading.Thread(target=encode) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert most == 1
    assert [p.name for p in tmp_path.iterdir()] == [f"lbsearch-cpu-encoder-{os.getuid()}.lock"]
