"""`lbsearch serve` bounded: bodies counted while they stream (multipart included) with one
deadline for the whole body, responses without a time limit, /api/embed's counts, connections per
client, the upload queue, and a corpus of bad input that must never give a 500."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_helpers import Running, index_folder, serving

from lbsearch.cli.serve.app import ServeSettings
from lbsearch.library import Library
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_sample_media

LIMITS = ServeSettings(
    max_upload_bytes=50_000,
    body_timeout_s=2,
    head_timeout_s=2,
    max_client_connections=20,
    max_jobs=1,
)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("serve-limits")
    write_sample_media(base / "media")
    noise = np.random.default_rng(5).integers(0, 255, (1400, 1400, 3), dtype=np.uint8)
    Image.fromarray(noise).save(base / "media" / "noise.png")  # ~6 MB: more than socket buffers
    index_folder(base / "media", base / "library", FakeEncoders())
    return base / "library"


@pytest.fixture(scope="module")
def running(library: Path) -> Iterator[Running]:
    with serving(library, limits=LIMITS) as run:
        yield run


def _raw(run: Running) -> socket.socket:
    host, port = run.base.split("://", 1)[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _head(run: Running, first_line: str, *headers: str) -> bytes:
    host = run.base.split("://", 1)[1]
    lines = [first_line, f"Host: {host}", *headers, "", ""]
    return "\r\n".join(lines).encode()


def test_a_trickled_body_meets_one_deadline(running: Running) -> None:
    """A byte now and then used to reset a per-chunk timer forever; the body has one deadline."""
    sock = _raw(running)
    head = _head(
        running,
        "POST /api/search HTTP/1.1",
        "Content-Type: multipart/form-data; boundary=x",
        "Content-Length: 30000",
    )
    started = time.monotonic()
    sock.sendall(head + b"--x\r\n")
    sock.settimeout(0.5)
    answer = b""
    while time.monotonic() - started < 8 and not answer:
        try:
            sock.sendall(b"a")  # one byte every 0.5 s: each chunk well inside the old timer
            answer = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            break
    sock.close()
    assert b" 408 " in answer.split(b"\r\n", 1)[0], answer[:100]
    assert time.monotonic() - started < 5


def test_a_multipart_upload_is_cut_off_at_the_limit_while_it_streams(running: Running) -> None:
    """No Content-Length (chunked): the limit is counted as the body arrives, so the answer
    comes once 50 kB are in, without waiting for (or storing) the rest."""
    sock = _raw(running)
    head = _head(
        running,
        "POST /api/search HTTP/1.1",
        "Content-Type: multipart/form-data; boundary=x",
        "Transfer-Encoding: chunked",
    )
    part = b'--x\r\nContent-Disposition: form-data; name="like"; filename="a.jpg"\r\n\r\n'
    payload = part + b"\xff" * 60_000
    sock.sendall(head + f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
    sock.settimeout(1.5)  # less than the body deadline: the answer is the size, not the time
    answer = sock.recv(4096)
    sock.close()
    assert b" 413 " in answer.split(b"\r\n", 1)[0], answer[:100]


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_a_response_has_no_time_limit(running: Running, library: Path) -> None:
    """A big file read slowly for longer than the body deadline still arrives whole."""
    noise = library.parent / "media" / "noise.png"
    with Library.open(library) as lib:
        record = lib.file_by_path(str(noise))
    assert record is not None
    expected = noise.read_bytes()
    with httpx.Client(base_url=running.base, timeout=30) as http:
        got = bytearray()
        with http.stream("GET", f"/api/files/{record.id}/content") as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes(256 * 1024):
                got += chunk
                time.sleep(0.25)  # ~6 MB in 24 chunks: about 6 s, past the 2 s body deadline
        assert bytes(got) == expected


def test_embed_takes_at_most_256_texts(running: Running) -> None:
    with httpx.Client(base_url=running.base, timeout=30) as http:
        ok = http.post("/api/embed", json={"texts": [f"t{i}" for i in range(256)]})
        assert ok.status_code == 200
        for count in (257, 4097):
            many = http.post("/api/embed", json={"texts": [f"t{i}" for i in range(count)]})
            assert many.status_code == 400, many.text
            assert "at most 256" in many.json()["error"]
        files = [("file", (f"{i}.jpg", b"x")) for i in range(17)]
        assert http.post("/api/embed", files=files).status_code == 400


BAD_GETS = [
    ("/api/search", {"q": "x", "after": "9999-12-31"}),
    ("/api/search", {"q": "x", "before": "0001-01-01"}),
    ("/api/search", {"q": "x", "after": "0000-00-00"}),
    ("/api/search", {"q": "x", "limit": "1e400"}),
    ("/api/search", {"q": "x", "min_score": "-1e309"}),
    ("/api/search", {"q": "x" * 6_000}),
    ("/api/search", {"q": "\x00"}),
    ("/api/search", {"like_id": "9" * 30}),
    ("/api/search", {"like_id": "²"}),
    ("/api/search", {"box": "like:" + "a" * 5000}),
    ("/api/segments/1/thumbnail", {"size": "²"}),
    ("/api/segments/1/thumbnail", {"size": "9" * 5000}),
    ("/api/segments/1/thumbnail", {"size": "-3"}),
    ("/api/segments/1/thumbnail", {"size": "0"}),
    ("/api/segments/" + "9" * 40 + "/thumbnail", {}),
    ("/api/files/" + "9" * 40 + "/content", {}),
    ("/api/files/9223372036854775808/content", {}),
    ("/api/status", {"all_failed": "\x00"}),
    ("/api/files/1/clip", {}),
    ("/api/files/1/clip", {"start": "\x00", "end": "1"}),
    ("/api/files/1/clip", {"start": "0", "end": "9" * 5000}),
    ("/api/files/1/clip", {"start": "-0", "end": "1e309"}),
    ("/api/files/1/clip", {"start": "nan", "end": "inf"}),
    ("/api/files/1/clip", {"start": "²", "end": "³"}),
    ("/api/files/1/clip", {"start": "1", "end": "0"}),
    ("/api/files/1/clip", {"start": "0", "end": "1", "pad": "-1"}),
    ("/api/files/1/clip", {"start": "0", "end": "9999999"}),
    ("/api/files/" + "9" * 40 + "/clip", {"start": "0", "end": "1"}),
    ("/api/files/9223372036854775808/clip", {"start": "0", "end": "1"}),
]


@pytest.mark.parametrize(("path", "params"), BAD_GETS)
def test_bad_input_is_never_a_500(running: Running, path: str, params: dict[str, str]) -> None:
    with httpx.Client(base_url=running.base, timeout=30) as http:
        response = http.get(path, params=params)
    assert response.status_code in (200, 400, 404, 413, 414, 422), response.text[:300]
    assert response.status_code == 200 or "error" in response.json()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"texts": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b"{not json",
        b'"a string"',
        b'{"texts": ["a"], "modality": "smell"}',
        b'{"texts": [1, 2]}',
        b"\xff\xfe",
    ],
)
def test_bad_json_is_never_a_500(running: Running, body: bytes) -> None:
    with httpx.Client(base_url=running.base, timeout=30) as http:
        headers = {"Content-Type": "application/json"}
        response = http.post("/api/embed", content=body, headers=headers)
    assert response.status_code in (400, 413), response.text[:300]
    assert "error" in response.json()


def test_a_burst_of_thumbnails_never_gives_a_500(library: Path) -> None:
    """40 worker threads once shared 15 catalog connections: a burst timed out with a 500."""
    with serving(library) as run, httpx.Client(base_url=run.base, timeout=60) as http:
        rows = http.get("/api/search", params={"q": "x", "m": "image"}).json()["results"]
        assert rows
        statuses: list[int] = []

        def fetch(url: str) -> None:
            with httpx.Client(base_url=run.base, timeout=60) as own:
                statuses.append(own.get(url, params={"size": "160"}).status_code)

        threads = [
            threading.Thread(target=fetch, args=(rows[i % len(rows)]["thumbnail_url"],))
            for i in range(60)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert len(statuses) == 60 and set(statuses) == {200}, statuses


def test_one_client_cannot_take_every_connection(running: Running) -> None:
    held = [_raw(running) for _ in range(LIMITS.max_client_connections)]
    try:
        extra = _raw(running)
        extra.settimeout(5)
        answer = extra.recv(4096)
        extra.close()
        assert b" 503 " in answer.split(b"\r\n", 1)[0]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    with httpx.Client(base_url=running.base, timeout=10) as http:  # free again once they close
        assert http.get("/api/status").status_code == 200


def test_uploads_past_the_queue_get_503_with_retry_after(running: Running) -> None:
    """max_jobs 1 here: while one upload is being handled, another is turned away at once."""
    sock = _raw(running)
    body = b'--x\r\nContent-Disposition: form-data; name="like"; filename="a.jpg"\r\n\r\n' + b"\xff"
    head = _head(
        running,
        "POST /api/search HTTP/1.1",
        "Content-Type: multipart/form-data; boundary=x",
        "Content-Length: 40000",
    )
    sock.sendall(head + body)  # holds the one place until its body deadline
    try:
        time.sleep(0.3)
        with httpx.Client(base_url=running.base, timeout=10) as http:
            busy = http.post("/api/search", files={"like": ("b.jpg", b"\xff\xd8")})
        assert busy.status_code == 503, busy.text
        assert busy.headers["retry-after"].isdigit()
        assert json.loads(busy.text)["error"]
    finally:
        sock.close()
