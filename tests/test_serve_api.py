"""`lbsearch serve`'s JSON API through a real HTTP server on 127.0.0.1 (fake encoders): search
equal to `lbsearch query --json`, search by uploaded example, embed, status, Range requests,
thumbnails of every modality, and what is refused (bad input, unknown ids, traversal)."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_helpers import Running, index_folder, serving
from typer.testing import CliRunner

from lbsearch.cli import query as query_module
from lbsearch.cli.main import app
from lbsearch.config import load_config
from lbsearch.media import classify, decode
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_sample_media

EXTRA = {"file_id", "thumbnail_url", "content_url"}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("serve")
    write_sample_media(base / "media")
    index_folder(base / "media", base / "library", FakeEncoders())
    return base / "media", base / "library"


@pytest.fixture(scope="module")
def running(library: tuple[Path, Path]) -> Iterator[Running]:
    with serving(library[1]) as run:
        yield run


@pytest.fixture
def client(running: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.base, timeout=60) as http:
        yield http


def _results(response: httpx.Response) -> list[dict[str, object]]:
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert isinstance(results, list)
    return results


# ------------------------------------------------------------------------------ search


def test_search_equals_lbsearch_query_json(
    client: httpx.Client, library: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query_module, "make_encoders", lambda *a, **k: FakeEncoders())
    for args, params in [
        (["a dog:2", "--not", "cat", "--limit", "50"], {"q": "a dog:2", "not": "cat", "limit": 50}),
        (["beach", "-m", "image", "-m", "audio"], {"q": "beach", "m": ["image", "audio"]}),
        (
            ["noise", "--path", "depth/*", "--min-score", "-1"],
            {"q": "noise", "path": "depth/*", "min_score": -1},
        ),
        (["hum", "--min-duration", "5"], {"q": "hum", "min_duration": 5}),
        (
            ["hum", "--match", "sound", "--moments", "2"],
            {"q": "hum", "match": "sound", "moments": 2},
        ),
    ]:
        done = CliRunner().invoke(app, ["query", *args, "--json", "--library", str(library[1])])
        assert done.exit_code == 0, done.output
        expected = [json.loads(line) for line in done.stdout.splitlines()]
        got = _results(client.get("/api/search", params=params))
        assert [{k: v for k, v in row.items() if k not in EXTRA} for row in got] == expected
        assert all(set(row) >= EXTRA for row in got)


def test_the_box_takes_the_command_lines_language(
    client: httpx.Client, library: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query_module, "make_encoders", lambda *a, **k: FakeEncoders())
    args = ["red car", "dog:2", "--not", "cat", "-m", "image", "-m", "audio", "--limit", "5"]
    done = CliRunner().invoke(app, ["query", *args, "--json", "--library", str(library[1])])
    expected = [json.loads(line) for line in done.stdout.splitlines()]
    boxed = {"box": '"red car" dog:2 -cat m:image', "m": "audio", "limit": "5"}
    got = _results(client.get("/api/search", params=boxed))
    assert [{k: v for k, v in row.items() if k not in EXTRA} for row in got] == expected


@pytest.mark.parametrize(
    ("box", "words"),
    [
        ("like:/etc/passwd", "cannot name files"),
        ("/etc/hostname", "cannot name files"),
        ("dog after:2024-01-01", "given twice"),
        ("dog m:smell", "smell"),
    ],
)
def test_the_box_cannot_name_server_files(client: httpx.Client, box: str, words: str) -> None:
    response = client.get("/api/search", params={"box": box, "after": "2023-01-01"})
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]


def test_search_results_link_to_their_file_and_thumbnail(client: httpx.Client) -> None:
    for row in _results(client.get("/api/search", params={"q": "sun", "limit": 50})):
        assert row["content_url"] == f"/api/files/{row['file_id']}/content"
        assert row["thumbnail_url"] == f"/api/segments/{row['segment_id']}/thumbnail"
        content = client.get(str(row["content_url"]))
        assert content.status_code == 200
        assert content.content == Path(str(row["path"])).read_bytes()


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"q": "x", "limit": "abc"}, 400, "not a number"),
        ({"q": "x", "limit": "0"}, 400, "less than 1"),
        ({"q": "x", "limit": "100000"}, 400, "more than"),
        ({"q": "x", "after": "yesterday"}, 400, "not a date"),
        ({"q": "x", "m": "smell"}, 400, "smell"),
        ({"q": "x:0"}, 400, "weight"),
        ({"not": "cat"}, 400, "negative"),
        ({}, 400, "nothing to search for"),
        ({"q": "x", "min_duration": "nan"}, 400, "finite"),
        ({"q": "x", "limit": ["1", "2"]}, 400, "2 times"),
        ({"like_id": "abc"}, 400, "not a file id"),
        ({"like_id": "999999"}, 404, "no file"),
        ({"q": "x", "match": "smell"}, 400, "smell"),
        ({"q": "x", "moments": "1.5"}, 400, "whole number"),
        ({"q": "x", "moments": "99"}, 400, "from 0 to 20"),
    ],
)
def test_bad_input_is_a_json_error_never_a_500(
    client: httpx.Client, params: dict[str, object], status: int, words: str
) -> None:
    response = client.get("/api/search", params=params)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_similar_by_file_id_leaves_the_example_out(client: httpx.Client) -> None:
    rows = _results(client.get("/api/search", params={"q": "x", "m": "image"}))
    beach = rows[0]
    similar = _results(client.get("/api/search", params={"like_id": beach["file_id"]}))
    assert similar and all(r["file_id"] != beach["file_id"] for r in similar)


def _upload_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("lbsearch-upload-*")}


def test_search_by_uploaded_example(client: httpx.Client, library: tuple[Path, Path]) -> None:
    """An upload that is a copy of an indexed file finds its neighbours, never that file (as
    `lbsearch query --like FILE` leaves FILE out); it is deleted after the request."""
    media = library[0]
    before = _upload_folders()
    for name in ("sunset_beach.jpg", "whistle.wav", "bouncing_ball.mp4"):
        data = (media / name).read_bytes()
        response = client.post("/api/search", files={"like": (name, data)}, data={"limit": "3"})
        rows = _results(response)
        assert rows, name
        assert str(media / name) not in [r["path"] for r in rows], "the example came back"
    assert _upload_folders() == before, "uploads are deleted after the request"


def test_upload_with_filters_and_a_negative_example(
    client: httpx.Client, library: tuple[Path, Path]
) -> None:
    media = library[0]
    files = [
        ("like", ("a.jpg", (media / "sunset_beach.jpg").read_bytes())),
        ("not_like", ("b.png", (media / "green_field.png").read_bytes())),
    ]
    data = {"m": ["image", "thermal"], "q": "sea"}
    rows = _results(client.post("/api/search", files=files, data=data))
    assert rows and {r["modality"] for r in rows} <= {"image", "thermal"}
    shown = {Path(str(r["path"])).name for r in rows}
    assert not shown & {"sunset_beach.jpg", "green_field.png"}, "examples never come back"


def test_an_undecodable_upload_is_422(client: httpx.Client) -> None:
    response = client.post("/api/search", files={"like": ("x.jpg", b"not a picture at all")})
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("x.jpg: ")
    assert "upload" not in response.text, "the temporary path stays private"


def test_post_search_needs_multipart(client: httpx.Client) -> None:
    response = client.post("/api/search", json={"q": "dog"})
    assert response.status_code == 400
    assert "multipart" in response.json()["error"]


# ------------------------------------------------------------------------------- embed


def test_embed_texts_in_the_shape_of_lbsearch_embed(client: httpx.Client) -> None:
    fake = FakeEncoders()
    response = client.post("/api/embed", json={"texts": ["a dog", "a cat"], "modality": "audio"})
    rows = _results(response)
    assert [set(r) for r in rows] == [{"text", "modality", "model", "segments"}] * 2
    assert rows[0]["text"] == "a dog" and rows[0]["modality"] == "text"
    assert rows[0]["model"] == fake.model_id(classify_modality("audio"))
    vector = rows[1]["segments"][0]["embedding"]  # type: ignore[index]
    expected = fake.embed_texts(classify_modality("audio"), ["a cat"])[0]
    np.testing.assert_allclose(vector, expected, rtol=1e-6)


def classify_modality(name: str) -> object:
    from lbsearch.types import Modality

    return Modality.parse(name)


def test_embed_files_gives_every_segment(client: httpx.Client, library: tuple[Path, Path]) -> None:
    media = library[0]
    files = [
        ("file", ("hum.flac", (media / "hum.flac").read_bytes())),
        ("file", ("broken.jpg", b"\xff\xd8 not really")),
    ]
    rows = _results(client.post("/api/embed", files=files))
    hum, broken = rows
    assert hum["path"] == "hum.flac" and hum["modality"] == "audio"
    config = load_config()
    fake = FakeEncoders()
    kind = classify(media / "hum.flac", config.classify)
    segments = decode(media / "hum.flac", fake.media_spec(kind), config)
    expected = fake.embed_segments(kind, segments)
    got = hum["segments"]
    assert isinstance(got, list) and len(got) == len(segments) == 2
    assert [(s["start_s"], s["end_s"]) for s in got] == [(s.start_s, s.end_s) for s in segments]
    np.testing.assert_allclose([s["embedding"] for s in got], expected, rtol=1e-6)
    assert set(broken) == {"path", "modality", "model", "error", "reason"}


@pytest.mark.parametrize(
    "body", [{"texts": []}, {"texts": "a dog"}, {"texts": ["a"], "modality": "smell"}, [1]]
)
def test_embed_refuses_bad_bodies(client: httpx.Client, body: object) -> None:
    response = client.post("/api/embed", json=body)
    assert response.status_code == 400, response.text


# ------------------------------------------------------------------ status and content


def test_status_equals_lbsearch_status_json(
    client: httpx.Client, library: tuple[Path, Path]
) -> None:
    status = client.get("/api/status").json()
    done = CliRunner().invoke(app, ["status", "--json", "--library", str(library[1])])
    assert done.exit_code == 0, done.output
    assert status == json.loads(done.stdout)
    assert status["library"] == str(library[1]) and status["files"] == 7
    modalities = {m["modality"] for m in status["modalities"]}
    assert modalities == {"image", "video", "audio", "depth", "thermal"}
    assert client.get("/api/status", params={"all_failed": 1}).json() == status  # none failed


def test_range_requests(client: httpx.Client, library: tuple[Path, Path]) -> None:
    rows = _results(client.get("/api/search", params={"q": "ball", "m": "video"}))
    url, path = str(rows[0]["content_url"]), Path(str(rows[0]["path"]))
    data = path.read_bytes()
    whole = client.get(url)
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes" and whole.content == data
    for header, start, end in [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, len(data) - 1),
        ("bytes=-500", len(data) - 500, len(data) - 1),
        (f"bytes=10-{len(data) + 50}", 10, len(data) - 1),
    ]:
        part = client.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
        assert part.content == data[start : end + 1]
    refused = client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert refused.status_code == 416
    assert refused.headers["content-range"] == f"bytes */{len(data)}"


# ------------------------------------------------------------------------- thumbnails


def _picture(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    return Image.open(io.BytesIO(response.content)).convert("RGB")


def test_thumbnails_for_every_modality(client: httpx.Client) -> None:
    rows = _results(client.get("/api/search", params={"q": "x", "limit": 50}))
    seen = set()
    for modality in ("image", "video", "audio", "depth", "thermal"):
        row = _results(client.get("/api/search", params={"q": "x", "m": modality}))[0]
        picture = _picture(client.get(str(row["thumbnail_url"])))
        seen.add(modality)
        assert max(picture.size) <= 320
        pixels = np.asarray(picture).astype(int)
        assert pixels.std() > 5, f"{modality}: a blank thumbnail"
        if modality == "depth":  # false colour, not grey
            assert np.abs(pixels[..., 0] - pixels[..., 2]).mean() > 20
        if modality == "audio":  # a spectrogram: wider than tall
            assert picture.width > picture.height
    assert seen and rows
    small = _picture(client.get(str(rows[0]["thumbnail_url"]), params={"size": 64}))
    assert max(small.size) <= 160  # sizes round up to 160, 320 or 640


def test_thumbnails_are_cached_on_disk_and_survive_restarts(
    library: tuple[Path, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "library"
    # another test's server may be running on the library: its socket is not copied
    shutil.copytree(library[1], copy, ignore=shutil.ignore_patterns("serve.sock"))
    shutil.rmtree(copy / "cache", ignore_errors=True)
    with serving(copy) as run, httpx.Client(base_url=run.base) as http:
        row = _results(http.get("/api/search", params={"q": "x", "m": "image"}))[0]
        first = http.get(str(row["thumbnail_url"])).content
    (cached,) = (copy / "cache" / "thumbnails").rglob("*.jpg")
    assert cached.read_bytes() == first
    marked = first + b"cached"
    cached.write_bytes(marked)
    with serving(copy) as run, httpx.Client(base_url=run.base) as http:
        assert http.get(str(row["thumbnail_url"])).content == marked


# -------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "url",
    [
        "/api/files/999999/content",
        "/api/segments/999999/thumbnail",
        "/api/files/-1/content",
        "/api/files/..%2f..%2fetc%2fpasswd/content",
        "/api/files/1/../../../../etc/passwd",
        "/static/../service.py",
        "/static/..%2fservice.py",
        "/static/%2e%2e/api.py",
        "/api/files/%2fetc%2fpasswd/content",
        "/etc/passwd",
    ],
)
def test_unknown_ids_and_traversal_get_404(client: httpx.Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404, (url, response.status_code, response.text[:200])
    assert "root:" not in response.text and "import" not in response.text


def test_a_file_swapped_for_a_link_is_not_served(
    library: tuple[Path, Path], tmp_path: Path
) -> None:
    media, lib = tmp_path / "media", tmp_path / "library"
    write_sample_media(media)
    index_folder(media, lib, FakeEncoders())
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve me\n")
    with serving(lib) as run, httpx.Client(base_url=run.base) as http:
        row = _results(http.get("/api/search", params={"q": "x", "m": "image"}))[0]
        target = Path(str(row["path"]))
        target.unlink()
        target.symlink_to(secret)
        response = http.get(str(row["content_url"]))
        assert response.status_code == 404
        assert "do not serve me" not in response.text
        shutil.rmtree(lib / "cache", ignore_errors=True)
        assert http.get(str(row["thumbnail_url"])).status_code == 404
