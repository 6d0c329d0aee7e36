"""Previews (the browse pane; the web page's thumbnails) read media only through
lbsearch.media.preview: its FIFO/device guard, its picture-size limit, the video decoder's frame
numbering. No terminal needed."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lbsearch.cli.tui.preview import build_preview
from lbsearch.config import Config
from lbsearch.errors import MediaError
from lbsearch.media import preview
from lbsearch.search import Hit
from lbsearch.testing.samples import write_sample_media
from lbsearch.types import Modality


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("previews")
    write_sample_media(root)
    return root


def _within(seconds: float, work: object) -> object:
    """`work()` in a daemon thread; fails if it is still running after `seconds` (a hang)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = work()  # type: ignore[operator]
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the preview blocked"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX thing")
def test_a_fifo_named_like_a_picture_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    hit = Hit(str(fifo), Modality.IMAGE, 0.5, 0.0, 0.0, 1, None, 0, 0.0)
    shown = _within(10, lambda: build_preview(hit))
    assert shown.picture is None and "not a regular file" in shown.note  # type: ignore[attr-defined]
    with pytest.raises(MediaError) as caught:
        _within(10, lambda: preview.describe(fifo, Modality.VIDEO, 3.0))
    assert caught.value.reason == "not_regular_file"


def test_the_picture_size_limit_applies(media: Path) -> None:
    small = Config()
    small = dataclasses.replace(
        small, media=dataclasses.replace(small.media, max_image_pixels=1000)
    )
    with pytest.raises(MediaError) as caught:
        preview.picture(media / "sunset_beach.jpg", Modality.IMAGE, config=small)
    assert caught.value.reason == "decompression_bomb"
    hit = Hit(str(media / "sunset_beach.jpg"), Modality.IMAGE, 0.5, 0, 0, 1, None, 10, 0.0)
    assert build_preview(hit).picture is not None  # the default limit lets it through


def test_pictures_of_each_kind(media: Path) -> None:
    photo = preview.picture(media / "sunset_beach.jpg", Modality.IMAGE, max_side=100)
    assert photo.mode == "RGB" and photo.size == (100, 75)
    depth = preview.picture(media / "depth" / "corridor_depth.png", Modality.DEPTH)
    assert depth.mode == "L" and depth.getextrema() == (0, 255)
    thermal = preview.describe(media / "thermal" / "person_ir.jpg", Modality.THERMAL)
    assert thermal.picture is not None and dict(thermal.facts)["format"] == "JPEG"
    first = preview.picture(media / "bouncing_ball.mp4", Modality.VIDEO)
    assert first.size == (320, 240)
    with pytest.raises(MediaError):
        preview.picture(media / "hum.flac", Modality.AUDIO)
    sound = preview.describe(media / "hum.flac", Modality.AUDIO)
    assert sound.picture is None and dict(sound.facts)["length"] == "00:14"


def test_key_frames_follow_the_time_asked(media: Path) -> None:
    video = media / "bouncing_ball.mp4"
    frames = [np.asarray(preview.key_frame(video, t), dtype=np.int16) for t in (0.0, 6.0, 60.0)]
    assert all(f.shape == (240, 320, 3) for f in frames)
    assert np.abs(frames[0] - frames[1]).mean() > 1, "the ball moved between 0 s and 6 s"
    last = np.asarray(preview.key_frame(video, 11.99), dtype=np.int16)
    assert np.abs(frames[2] - last).mean() < 1, "past the end: the last frame"
    small = preview.key_frame(video, 6.0, max_side=64)
    assert max(small.size) == 64 and isinstance(small, Image.Image)
