"""The optional decord backend gives the same windows and frames as PyAV (only where installed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import media_factory as mf
import pytest
import torch

from lbsearch.config import Config, load_config
from lbsearch.media import decode
from lbsearch.types import MediaSpec, Modality

pytest.importorskip("decord")

VIDEO = MediaSpec(Modality.VIDEO)


def config(backend: str, segment_seconds: float = 10.0) -> Config:
    cfg = load_config()
    video = dataclasses.replace(cfg.video, backend=backend, segment_seconds=segment_seconds)
    return dataclasses.replace(cfg, video=video)


@pytest.mark.parametrize(
    ("name", "kwargs", "segment_seconds"),
    [
        ("short.mp4", {"seconds": 3.0, "fps": 10}, 10.0),
        (
            "portrait.mp4",
            {"seconds": 1.0, "fps": 25, "width": 64, "height": 96, "codec": "mpeg4"},
            10.0,
        ),
        (
            "vp9.webm",
            {"seconds": 2.0, "fps": 30, "width": 96, "height": 64, "codec": "libvpx-vp9"},
            10.0,
        ),
        ("windows.mp4", {"seconds": 12.0, "fps": 10, "width": 64, "height": 48, "gop": 15}, 2.0),
        (
            "rotated.mp4",
            {"seconds": 1.0, "fps": 10, "width": 96, "height": 64, "rotation": 90},
            10.0,
        ),
    ],
)
def test_same_segments_as_pyav(
    tmp_path: Path, name: str, kwargs: dict, segment_seconds: float
) -> None:  # type: ignore[type-arg]
    path = mf.video(tmp_path / name, **kwargs)
    ours = decode(path, VIDEO, config("pyav", segment_seconds))
    theirs = decode(path, VIDEO, config("decord", segment_seconds))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert (a.start_s, a.end_s) == pytest.approx((b.start_s, b.end_s), abs=1e-3)
        assert torch.equal(a.pixels, b.pixels)
