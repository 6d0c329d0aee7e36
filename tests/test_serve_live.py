"""`lbsearch serve` while an index run writes the same library, and as a real process with the
tiny LanguageBind checkpoints: answers equal to `lbsearch query --json`, one log line per
request, Ctrl-C stops it cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_helpers import index_folder, serving

from lbsearch.cli.serve.app import ServeSettings
from lbsearch.config import load_config
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_sample_media


def _pictures(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        pixels = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"new_{i:03d}.png")


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_searches_are_answered_while_an_index_run_writes(tmp_path: Path) -> None:
    media, library = tmp_path / "media", tmp_path / "library"
    write_sample_media(media)
    index_folder(media, library, FakeEncoders())
    _pictures(tmp_path / "more", 40)
    limits = ServeSettings(reload_poll_s=0.1)
    with serving(library, limits=limits) as run, httpx.Client(base_url=run.base) as http:
        indexer = threading.Thread(
            target=index_folder,
            args=(tmp_path / "more", library, FakeEncoders(delay_s=0.4)),
            daemon=True,
        )
        indexer.start()
        seen, slowest = [], 0.0
        while indexer.is_alive():
            started = time.perf_counter()
            response = http.get("/api/search", params={"q": "noise", "limit": 100})
            slowest = max(slowest, time.perf_counter() - started)
            assert response.status_code == 200, response.text
            seen.append(sum("/more/" in r["path"] for r in response.json()["results"]))
            time.sleep(0.05)
        indexer.join()
        assert slowest < 5.0, "a search waited for the indexer"
        assert any(0 < n < 40 for n in seen), f"no committed batch seen mid-run: {seen}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = http.get("/api/search", params={"q": "noise", "limit": 100}).json()["results"]
            if sum("/more/" in r["path"] for r in rows) == 40:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the service never saw the whole index run")
        service = run.server.config.app.state.service
        assert service.reloads >= 2


def test_a_missing_library_is_reported_before_listening(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lbsearch.cli.main import app

    done = CliRunner().invoke(app, ["serve", "--library", str(tmp_path / "nowhere"), "--port", "0"])
    assert done.exit_code == 1
    assert "lbsearch index" in done.stderr and "open http" not in done.stderr


# --------------------------------------------------------- a real process, tiny models


@pytest.fixture(scope="module")
def tiny_library(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lbsearch.embedder import open_embedder

    base = tmp_path_factory.mktemp("serve-tiny")
    write_sample_media(base / "media")
    config = load_config(tiny_config)
    index_folder(base / "media", base / "library", open_embedder(config), config)
    return base / "library"


def _alike(first: Any, second: Any) -> bool:
    """Equal JSON values, floats within 2e-6 of each other (two prints of one rounding)."""
    if isinstance(first, float) and isinstance(second, float):
        return abs(first - second) <= 2e-6
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(map(_alike, first, second))
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(_alike(first[k], second[k]) for k in first)
    return type(first) is type(second) and first == second


def _lbsearch(config: Path, command: str, *args: str) -> list[str]:
    # --backend torch: "auto" picks ONNX Runtime for text towers, whose module has not landed
    # on main yet (as in tests/test_cli_query.py)
    options = [command, "--backend", "torch", *args]
    return [sys.executable, "-m", "lbsearch", "--config", str(config), *options]


def test_serve_process_answers_like_query_and_stops_on_ctrl_c(
    tiny_config: Path, tiny_library: Path
) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        _lbsearch(tiny_config, "query", "a dog barking", "--json", "--library", str(tiny_library)),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    expected = [json.loads(line) for line in done.stdout.splitlines()]
    server = subprocess.Popen(
        _lbsearch(tiny_config, "serve", "--library", str(tiny_library), "--port", "0"),
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stderr is not None
        base = None
        for line in server.stderr:
            match = re.search(r"open (http://127\.0\.0\.1:\d+)/", line)
            if match:
                base = match.group(1)
                break
        assert base, "no URL printed"
        with httpx.Client(base_url=base, timeout=120) as http:
            got = http.get("/api/search", params={"q": "a dog barking"})
            assert got.status_code == 200, got.text
            rows = got.json()["results"]
            extra = {"file_id", "thumbnail_url", "content_url"}
            # the same results; numbers to within the 6th decimal: two processes compute them
            # ~1e-8 apart, and a value at a rounding boundary prints one digit apart (-0.83739
            # from one, -0.837391 from the other, seen when this test runs alone)
            served = [{k: v for k, v in r.items() if k not in extra} for r in rows]
            assert _alike(served, expected), (served, expected)
            assert http.get("/api/status").status_code == 200
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
        rest = server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    log = [line for line in rest.splitlines() if " GET /api/" in line]
    assert len(log) == 2 and " GET /api/search 200 " in log[0]
    assert "Traceback" not in rest and "stopped" in rest


def test_embed_and_upload_search_with_tiny_checkpoints(
    tiny_config: Path, tiny_library: Path
) -> None:
    """/api/embed gives what `lbsearch embed --json` prints for the same file and text, and an
    uploaded copy of an indexed picture finds it first (the real towers, not the fake)."""
    from typer.testing import CliRunner

    from lbsearch.cli.main import app
    from lbsearch.embedder import open_embedder

    config = load_config(tiny_config)
    media = tiny_library.parent / "media"
    picture = media / "sunset_beach.jpg"
    cli = ["--config", str(tiny_config), "embed", "--backend", "torch", "--json"]
    done = CliRunner().invoke(app, [*cli, str(picture), "--text", "a dog"])
    assert done.exit_code == 0, done.output
    text_row, file_row = (json.loads(line) for line in done.stdout.splitlines())

    def factory(lib: object) -> object:
        models = {m: s.model_id for m, s in lib.modality_states().items()}  # type: ignore[attr-defined]
        return open_embedder(config, models=models, backend="torch")

    with (
        serving(tiny_library, factory=factory, config=config) as run,
        httpx.Client(base_url=run.base, timeout=300) as http,
    ):
        texts = http.post("/api/embed", json={"texts": ["a dog"], "modality": "image"})
        assert texts.status_code == 200, texts.text
        assert texts.json()["results"] == [text_row]
        files = http.post("/api/embed", files={"file": (picture.name, picture.read_bytes())})
        (got,) = files.json()["results"]
        assert {**got, "path": file_row["path"]} == file_row and got["path"] == picture.name
        upload = {"like": ("copy.jpg", picture.read_bytes())}
        found = http.post("/api/search", files=upload, data={"limit": "3"}).json()["results"]
        assert found and str(picture) not in [r["path"] for r in found], "a copy leaves it out"
        similar = http.get("/api/search", params={"like_id": "1", "limit": "3"})
        assert similar.status_code in (200, 404)
