"""`lbsearch serve`'s guards: loopback by default, a token for anything else, Host and Origin
checks, request and upload limits, slow clients that stall nobody else."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_helpers import Running, index_folder, serving
from typer.testing import CliRunner

from lbsearch.cli.main import app
from lbsearch.cli.serve.app import ServeSettings
from lbsearch.cli.serve.security import check_binding
from lbsearch.errors import UsageError
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_sample_media

TOKEN = "s3cret-token-for-tests-0123456789"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("serve-security")
    write_sample_media(base / "media")
    index_folder(base / "media", base / "library", FakeEncoders())
    return base / "library"


@pytest.fixture(scope="module")
def open_server(library: Path) -> Iterator[Running]:
    limits = ServeSettings(max_upload_bytes=50_000, body_timeout_s=2, head_timeout_s=2)
    with serving(library, limits=limits) as run:
        yield run


@pytest.fixture(scope="module")
def token_server(library: Path) -> Iterator[Running]:
    with serving(library, token=TOKEN) as run:
        yield run


def test_a_public_address_needs_a_token(library: Path) -> None:
    done = CliRunner().invoke(app, ["serve", "--library", str(library), "--host", "0.0.0.0"])
    assert done.exit_code == 2
    assert "--token" in done.stderr
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.org"):
        with pytest.raises(UsageError):
            check_binding(host, None)
    check_binding("127.0.0.1", None)
    check_binding("::1", None)
    check_binding("0.0.0.0", TOKEN)
    with pytest.raises(UsageError, match="shorter"):
        check_binding("0.0.0.0", "short")


def test_without_a_token_only_loopback_names_are_answered(open_server: Running) -> None:
    with httpx.Client(base_url=open_server.base) as http:
        assert http.get("/api/status").status_code == 200
        port = open_server.base.rsplit(":", 1)[1]
        assert http.get("/api/status", headers={"Host": f"localhost:{port}"}).status_code == 200
        rebound = http.get("/api/status", headers={"Host": f"evil.example:{port}"})
        assert rebound.status_code == 403


def test_other_sites_are_refused_and_no_cors_headers(open_server: Running) -> None:
    with httpx.Client(base_url=open_server.base) as http:
        host = open_server.base.split("://", 1)[1]
        same = http.get("/api/status", headers={"Origin": f"http://{host}"})
        assert same.status_code == 200
        assert not any(k.lower().startswith("access-control") for k in same.headers)
        for origin in ("http://evil.example", "null"):
            other = http.post(
                "/api/search", headers={"Origin": origin}, files={"like": ("a.jpg", b"x")}
            )
            assert other.status_code == 403, origin
        preflight = http.options("/api/search", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in preflight.headers


def test_the_token_is_required(token_server: Running) -> None:
    with httpx.Client(base_url=token_server.base) as http:
        assert http.get("/api/status").status_code == 401
        assert http.get("/").status_code == 401
        wrong = http.get("/api/status", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        good = http.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200


def test_the_one_time_login_url_sets_a_cookie_once(token_server: Running) -> None:
    code = token_server.server.config.app.state.access.login_code
    with httpx.Client(base_url=token_server.base) as browser:
        login = browser.get(f"/login?code={code}")
        assert login.status_code == 303
        assert "httponly" in login.headers["set-cookie"].lower()
        assert browser.get("/api/status").status_code == 200
        assert browser.get("/").status_code == 200
    with httpx.Client(base_url=token_server.base) as other:
        assert other.get(f"/login?code={code}").status_code == 403, "the code works once"
        assert other.get("/api/status").status_code == 401
        assert other.get(f"/login?token={TOKEN}").status_code == 303
        assert other.get("/api/status").status_code == 200


def test_request_and_upload_limits(open_server: Running) -> None:
    with httpx.Client(base_url=open_server.base) as http:
        big = http.post("/api/search", files={"like": ("a.jpg", b"\xff" * 60_000)})
        assert big.status_code == 413, big.text
        huge = http.post("/api/search", files={"like": ("a.jpg", b"\xff" * 500_000)})
        assert huge.status_code == 413
        many = [("like", (f"{i}.jpg", b"x")) for i in range(40)]
        assert http.post("/api/search", files=many).status_code == 400


def _raw(base: str) -> socket.socket:
    host, port = base.split("://", 1)[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def test_slow_and_broken_clients_do_not_stall_others(open_server: Running) -> None:
    host = open_server.base.split("://", 1)[1]
    stalled_headers = _raw(open_server.base)
    stalled_headers.sendall(b"GET /api/status HTTP/1.1\r\nHost: " + host.encode())
    stalled_body = _raw(open_server.base)
    stalled_body.sendall(
        b"POST /api/search HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 40000\r\n\r\n--x\r\n"
    )
    try:
        with httpx.Client(base_url=open_server.base, timeout=10) as http:
            started = time.perf_counter()
            for _ in range(5):
                assert http.get("/api/search", params={"q": "dog"}).status_code == 200
            assert time.perf_counter() - started < 5
        stalled_body.settimeout(10)
        answer = stalled_body.recv(4096)  # the body time limit (2 s here) ends the stalled upload
        assert b" 408 " in answer.split(b"\r\n", 1)[0]
        stalled_headers.settimeout(10)
        assert stalled_headers.recv(4096) == b"", "the head deadline (2 s) closed the connection"
    finally:
        stalled_headers.close()
        stalled_body.close()
