"""A corpus of bad files, generated in tmp: each must give its reason code, never a crash or hang."""

from __future__ import annotations

import dataclasses
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import media_factory as mf
import numpy as np
import pytest

from lbsearch.config import Config
from lbsearch.errors import MediaError
from lbsearch.media import REASONS, decode, fileio
from lbsearch.types import MediaSpec, Modality

CFG = Config()  # the packaged defaults; the user's settings never reach tests
SPECS = {m: MediaSpec(m) for m in Modality}


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height pixels, with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def garbage(path: Path, size: int = 4096) -> Path:
    path.write_bytes(np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def zeroed_payload(src: Path, dst: Path) -> Path:
    """An MP4 whose container is intact but whose coded frames are all zero bytes."""
    data = bytearray(src.read_bytes())
    start = data.index(b"mdat") + 4
    size = struct.unpack(">I", data[start - 8 : start - 4])[0]
    data[start : start - 8 + size] = bytes(size - 8)
    dst.write_bytes(bytes(data))
    return dst


def corpus(d: Path) -> list[tuple[str, Path, Modality, str]]:
    """(name, path, modality decoded as, expected reason)."""
    png, jpg = mf.image(d / "ok.png", 64, 48), mf.image(d / "ok.jpg", 64, 48)
    vid, wav = mf.video(d / "ok.mp4", 1.0), mf.audio(d / "ok.wav", 1.0)
    os.mkfifo(d / "fifo.mp4")
    empty = d / "empty.jpg"
    empty.touch()
    return [
        ("missing", d / "nope.png", Modality.IMAGE, "not_found"),
        ("directory", d, Modality.IMAGE, "not_regular_file"),
        ("fifo", d / "fifo.mp4", Modality.VIDEO, "not_regular_file"),
        ("device", Path("/dev/null"), Modality.AUDIO, "not_regular_file"),
        ("empty", empty, Modality.IMAGE, "empty_file"),
        ("garbage image", garbage(d / "noise.jpg"), Modality.IMAGE, "corrupt"),
        ("garbage video", garbage(d / "noise.mp4"), Modality.VIDEO, "corrupt"),
        ("garbage audio", garbage(d / "noise.wav"), Modality.AUDIO, "corrupt"),
        ("text as depth", garbage(d / "noise_depth.png"), Modality.DEPTH, "corrupt"),
        ("truncated png", mf.truncate(png, d / "cut.png"), Modality.IMAGE, "truncated"),
        ("truncated jpeg", mf.truncate(jpg, d / "cut.jpg", 0.6), Modality.IMAGE, "truncated"),
        ("truncated mp4", mf.truncate(vid, d / "cut.mp4"), Modality.VIDEO, "truncated"),
        ("truncated wav", mf.truncate(wav, d / "cut.wav"), Modality.AUDIO, "truncated"),
        (
            "bomb",
            png_header_only(d / "bomb.png", 40000, 40000),
            Modality.IMAGE,
            "decompression_bomb",
        ),
        ("8-bit depth", mf.image(d / "d8.png", 20, 20, mode="L"), Modality.DEPTH, "not_depth_map"),
        ("rgb depth", png, Modality.DEPTH, "not_depth_map"),
        ("audio as video", wav, Modality.VIDEO, "no_video_frames"),
        ("zeroed frames", zeroed_payload(vid, d / "zero.mp4"), Modality.VIDEO, "no_video_frames"),
        ("silent video", vid, Modality.AUDIO, "no_audio"),
        ("image as audio", png, Modality.AUDIO, "no_audio"),  # FFmpeg reads a PNG as video
        (
            "25 ms minus one sample",
            mf.audio_samples(d / "tiny.wav", np.zeros((1, 399), np.float32), 16000),
            Modality.AUDIO,
            "audio_too_short",
        ),
    ]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Modality, str]]:
    return {name: (p, m, r) for name, p, m, r in corpus(tmp_path_factory.mktemp("bad"))}


# the corpus entries by name (parametrize needs them before the files exist)
NAMES = [
    "missing", "directory", "fifo", "device", "empty", "garbage image", "garbage video",
    "garbage audio", "text as depth", "truncated png", "truncated jpeg", "truncated mp4",
    "truncated wav", "bomb", "8-bit depth", "rgb depth", "audio as video", "zeroed frames",
    "silent video", "image as audio", "25 ms minus one sample",
]  # fmt: skip


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", NAMES)
def test_bad_file_gives_its_reason(
    bad_files: dict[str, tuple[Path, Modality, str]], name: str
) -> None:
    path, modality, reason = bad_files[name]
    with pytest.raises(MediaError) as info:
        decode(path, SPECS[modality], CFG)
    assert info.value.reason == reason, info.value.detail
    assert info.value.reason in REASONS
    assert info.value.hint and info.value.path == str(path)


def test_every_corpus_entry_is_listed(tmp_path: Path) -> None:
    assert [name for name, *_ in corpus(tmp_path)] == NAMES


def with_media(cfg: Config, **changes: object) -> Config:
    return dataclasses.replace(cfg, media=dataclasses.replace(cfg.media, **changes))


def test_limits_from_config(tmp_path: Path) -> None:
    png = mf.image(tmp_path / "ok.png", 64, 48)
    cases: list[tuple[Config, str]] = [
        (with_media(CFG, max_file_bytes=100), "too_large"),
        (with_media(CFG, max_image_pixels=1000), "decompression_bomb"),
    ]
    for cfg, reason in cases:
        with pytest.raises(MediaError) as info:
            decode(png, SPECS[Modality.IMAGE], cfg)
        assert info.value.reason == reason
    decode(png, SPECS[Modality.IMAGE], with_media(CFG, max_image_pixels=64 * 48))
    video = mf.video(tmp_path / "v.mp4", 0.5)  # 64 x 48 frames
    with pytest.raises(MediaError) as info:
        decode(video, SPECS[Modality.VIDEO], with_media(CFG, max_image_pixels=1000))
    assert info.value.reason == "decompression_bomb"


def test_bomb_limit_can_be_raised_above_pillows_default(tmp_path: Path) -> None:
    path = png_header_only(tmp_path / "big.png", 20000, 10000)  # 2e8 px > Pillow's 1.8e8 error
    with pytest.raises(MediaError) as info:
        decode(path, SPECS[Modality.IMAGE], with_media(CFG, max_image_pixels=300_000_000))
    assert info.value.reason != "decompression_bomb"  # our limit, not Pillow's, decides


def test_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = mf.image(tmp_path / "secret.png", 8, 8)

    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fileio.os, "open", denied)
    with pytest.raises(MediaError) as info:
        decode(path, SPECS[Modality.IMAGE], CFG)
    assert info.value.reason == "unreadable"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_by_mode(tmp_path: Path) -> None:
    path = mf.image(tmp_path / "secret.png", 8, 8)
    path.chmod(0)
    with pytest.raises(MediaError) as info:
        decode(path, SPECS[Modality.IMAGE], CFG)
    assert info.value.reason == "unreadable"


@pytest.mark.parametrize("action", ["delete", "replace", "append"])
def test_vanishing_during_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    path = mf.video(tmp_path / "v.mp4", 1.0)
    spare = mf.video(tmp_path / "other.mp4", 1.0, seed=3)
    changes: dict[str, Callable[[], object]] = {
        "delete": path.unlink,
        "replace": lambda: spare.replace(path),
        "append": lambda: path.write_bytes(path.read_bytes() + b"\0"),
    }
    real_check = fileio.check_unchanged

    def meddle_then_check(p: Path, before: os.stat_result) -> None:
        changes[action]()  # what another program does while we decode
        real_check(p, before)

    monkeypatch.setattr(fileio, "check_unchanged", meddle_then_check)
    with pytest.raises(MediaError) as info:
        decode(path, SPECS[Modality.VIDEO], CFG)
    assert info.value.reason == "vanished"


@pytest.mark.parametrize("name", ["ünï cödé 🐕.png", "new\nline.png", "tab\tand 'quote\".png"])
def test_any_file_name(tmp_path: Path, name: str) -> None:
    (seg,) = decode(mf.image(tmp_path / name, 20, 10), SPECS[Modality.IMAGE], CFG)
    assert seg.path == str(tmp_path / name)


def test_undecodable_name_bytes(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/bad-\xff\xfe-name.wav"
    mf.audio(Path(os.fsdecode(raw)), 0.5)
    (seg,) = decode(Path(os.fsdecode(raw)), SPECS[Modality.AUDIO], CFG)
    assert seg.pixels.shape == (3, 112, 1036)


def test_reason_codes_are_documented() -> None:
    assert all(code and meaning for code, meaning in REASONS.items())
    assert {"not_found", "vanished", "decode_timeout", "decompression_bomb"} <= set(REASONS)
