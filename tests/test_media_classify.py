"""classify(): extensions, content sniffing where the extension lies, depth/thermal globs."""

from __future__ import annotations

import os
from pathlib import Path

import media_factory as mf
import pytest

from lbsearch.config import ClassifyConfig
from lbsearch.errors import MediaError
from lbsearch.media import classify
from lbsearch.types import Modality

CFG = ClassifyConfig()  # the packaged defaults


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("classify")
    return {
        "png": mf.image(d / "a.png", 16, 12),
        "jpg": mf.image(d / "b.JPG", 16, 12),
        "mp4": mf.video(d / "v.mp4", 0.5),
        "webm_audio": mf.audio(d / "a.ogg", 0.2, 48000),
        "wav": mf.audio(d / "s.wav", 0.2),
        "m4a_in_mp4": mf.audio(d / "music.m4a", 0.3),
        "depth": mf.depth_png(d / "d.png", 8, 8),
    }


def copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


@pytest.mark.parametrize(
    ("key", "modality"),
    [
        ("png", Modality.IMAGE),
        ("jpg", Modality.IMAGE),
        ("mp4", Modality.VIDEO),
        ("webm_audio", Modality.AUDIO),
        ("wav", Modality.AUDIO),
        ("m4a_in_mp4", Modality.AUDIO),
    ],
)
def test_by_extension_and_content(samples: dict[str, Path], key: str, modality: Modality) -> None:
    assert classify(samples[key], CFG) is modality


@pytest.mark.parametrize(
    ("key", "name", "modality"),
    [
        ("png", "photo.mp3", Modality.IMAGE),  # the bytes win over a lying extension
        ("mp4", "clip.jpg", Modality.VIDEO),
        ("mp4", "download", Modality.VIDEO),  # no extension at all
        ("wav", "recording.bin", Modality.AUDIO),
        ("m4a_in_mp4", "song.mp4", Modality.AUDIO),  # an MP4 without video is audio
        ("webm_audio", "voice.webm", Modality.AUDIO),
    ],
)
def test_sniffing_beats_extension(
    samples: dict[str, Path], tmp_path: Path, key: str, name: str, modality: Modality
) -> None:
    assert classify(copy(samples[key], tmp_path / name), CFG) is modality


@pytest.mark.parametrize("name", ["notes.txt", "README", "data.json", "empty"])
def test_non_media_is_unsupported(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("" if name == "empty" else "hello, world\n" * 10)
    with pytest.raises(MediaError) as info:
        classify(path, CFG)
    assert info.value.reason == "unsupported_type"


def test_empty_file_with_media_extension_is_left_to_decode(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.touch()
    assert classify(path, CFG) is Modality.IMAGE  # decode reports empty_file


@pytest.mark.parametrize(
    ("relative", "root_name", "modality"),
    [
        ("scans/depth/room.png", "lib", Modality.DEPTH),
        ("scans/DEPTH/Room.PNG", "lib", Modality.DEPTH),  # case-insensitive
        ("kitchen_depth.png", "lib", Modality.DEPTH),
        ("room.png", "depth", Modality.DEPTH),  # the indexed root itself is called depth
        ("cams/thermal/a.png", "lib", Modality.THERMAL),
        ("cams/infrared/a.png", "lib", Modality.THERMAL),
        ("night_ir.png", "lib", Modality.THERMAL),
        ("holiday/beach.png", "lib", Modality.IMAGE),
        ("depthcharge/x.png", "lib", Modality.IMAGE),  # a folder name must match whole
    ],
)
def test_depth_and_thermal_globs(
    samples: dict[str, Path], tmp_path: Path, relative: str, root_name: str, modality: Modality
) -> None:
    root = tmp_path / root_name
    path = root / relative
    path.parent.mkdir(parents=True)
    copy(samples["png"], path)
    assert classify(path, CFG, root=root) is modality


def test_globs_only_apply_to_pictures(samples: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "depth").mkdir()
    assert classify(copy(samples["mp4"], tmp_path / "depth" / "v.mp4"), CFG) is Modality.VIDEO


def test_npy_is_depth_only_inside_the_depth_globs(tmp_path: Path) -> None:
    path = mf.depth_npy(tmp_path / "scan.npy", 4, 4)
    assert classify(path, CFG) is Modality.DEPTH
    with pytest.raises(MediaError) as info:
        classify(path, ClassifyConfig(depth_globs=("**/depth/**",)))
    assert info.value.reason == "unsupported_type"


def test_forced_modality_reads_nothing(tmp_path: Path) -> None:
    assert classify(tmp_path / "missing.png", CFG, forced=Modality.THERMAL) is Modality.THERMAL


def test_special_files_are_refused_without_opening(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)  # opening this for reading would block forever
    for path, reason in [
        (fifo, "not_regular_file"),
        (tmp_path, "not_regular_file"),
        (tmp_path / "gone.png", "not_found"),
    ]:
        with pytest.raises(MediaError) as info:
            classify(path, CFG)
        assert info.value.reason == reason


def test_unicode_and_newline_names(samples: dict[str, Path], tmp_path: Path) -> None:
    path = copy(samples["png"], tmp_path / "ünï\ncödé 🐕 name.png")
    assert classify(path, CFG) is Modality.IMAGE


def test_heic_needs_its_plugin(samples: dict[str, Path], tmp_path: Path) -> None:
    heic = tmp_path / "phone.heic"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        with pytest.raises(MediaError) as info:
            classify(heic, CFG)
        assert info.value.reason == "unsupported_type"
    else:
        assert classify(heic, CFG) is Modality.IMAGE
    # a PNG with a .heic name is a PNG
    assert classify(copy(samples["png"], tmp_path / "misnamed.heic"), CFG) is Modality.IMAGE
