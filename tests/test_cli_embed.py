"""`lbsearch embed` on files: JSON Lines per file, errors as records, exit status, --as."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lbsearch.testing.samples import write_sample_media


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    files = write_sample_media(tmp_path_factory.mktemp("samples"))
    return {path.name: path for path in files}


def _embed(config: Path, *args: str) -> tuple[int, list[dict]]:
    done = subprocess.run(
        [sys.executable, "-m", "lbsearch", "--config", str(config), "embed", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def test_every_modality_embeds_with_time_spans(tiny_config: Path, samples: dict[str, Path]) -> None:
    code, records = _embed(tiny_config, *map(str, samples.values()))
    assert code == 0
    by_name = {Path(r["path"]).name: r for r in records}
    assert [Path(r["path"]).name for r in records] == list(samples), "output keeps input order"
    expected = {
        "sunset_beach.jpg": "image",
        "green_field.png": "image",
        "corridor_depth.png": "depth",
        "person_ir.jpg": "thermal",
        "bouncing_ball.mp4": "video",
        "whistle.wav": "audio",
        "hum.flac": "audio",
    }
    assert {name: r["modality"] for name, r in by_name.items()} == expected
    for record in records:
        for segment in record["segments"]:
            vector = segment["embedding"]
            assert len(vector) == 16 and abs(sum(v * v for v in vector) - 1) < 1e-5
    video = by_name["bouncing_ball.mp4"]["segments"]
    assert len(video) == 1 and video[0]["start_s"] == 0  # 12 s: the 2 s tail merges into one window
    assert by_name["hum.flac"]["segments"][-1]["end_s"] == pytest.approx(14.0, abs=0.05)
    assert len(by_name["hum.flac"]["segments"]) == 2
    assert by_name["sunset_beach.jpg"]["segments"][0]["start_s"] == 0.0


def test_failures_are_records_and_set_the_exit_status(
    tiny_config: Path, samples: dict[str, Path], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jpg"
    empty.touch()
    fake = tmp_path / "notes.mp3"
    fake.write_text("not audio at all " * 50)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    code, records = _embed(
        tiny_config, str(empty), str(samples["whistle.wav"]), str(fake), str(fifo)
    )
    assert code == 1
    reasons = {Path(r["path"]).name: r.get("reason") for r in records}
    assert reasons == {
        "empty.jpg": "empty_file",
        "whistle.wav": None,
        "notes.mp3": "corrupt",  # named as audio, but the decoder rejects it
        "pipe.mp4": "not_regular_file",
    }
    assert all(r["error"] for r in records if r.get("reason"))


def test_as_audio_embeds_a_videos_sound_track(tiny_config: Path, samples: dict[str, Path]) -> None:
    code, [record] = _embed(tiny_config, "--as", "audio", str(samples["bouncing_ball.mp4"]))
    assert code == 0 and record["modality"] == "audio"
    assert record["model"].endswith("audio_ft")
    assert record["segments"][-1]["end_s"] == pytest.approx(12.0, abs=0.05)


def test_same_file_gives_the_same_vectors(tiny_config: Path, samples: dict[str, Path]) -> None:
    path = str(samples["bouncing_ball.mp4"])
    assert _embed(tiny_config, path)[1] == _embed(tiny_config, path)[1]
