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


# ------------------------------------------------------------------- browser hardening


def test_other_sites_cannot_use_the_api_even_without_an_origin(open_server: Running) -> None:
    """A GET from another site carries no Origin: Sec-Fetch-Site tells, on every route but /."""
    with httpx.Client(base_url=open_server.base) as http:
        for site in ("cross-site", "same-site"):
            headers = {"Sec-Fetch-Site": site}
            for path in ("/api/search?q=dog", "/api/status", "/static/app.js"):
                assert http.get(path, headers=headers).status_code == 403, (site, path)
            row = http.get("/api/search", params={"q": "x", "m": "image"}).json()["results"][0]
            for url in (row["thumbnail_url"], row["content_url"]):
                assert http.get(url, headers=headers).status_code == 403
            assert http.get("/", headers=headers).status_code == 200  # a link may open the page
        for site in ("same-origin", "none"):
            assert http.get("/api/status", headers={"Sec-Fetch-Site": site}).status_code == 200


def test_the_page_cannot_be_framed_and_media_stay_on_this_origin(open_server: Running) -> None:
    with httpx.Client(base_url=open_server.base) as http:
        page = http.get("/")
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        row = http.get("/api/search", params={"q": "x", "m": "image"}).json()["results"][0]
        for url in (row["thumbnail_url"], row["content_url"]):
            assert http.get(url).headers["cross-origin-resource-policy"] == "same-origin"


@pytest.mark.parametrize(
    "host",
    [
        "[::1]evil.example",
        "127.0.0.1.evil.example",
        "localhost@evil.example",
        "127.0.0.1:1",  # another port: a page served there
        "[::1",
        "",
    ],
)
def test_host_headers_are_parsed_strictly(open_server: Running, host: str) -> None:
    with httpx.Client(base_url=open_server.base) as http:
        assert http.get("/api/status", headers={"Host": host}).status_code in (400, 403)


def test_origins_must_match_scheme_host_and_port(open_server: Running) -> None:
    host = open_server.base.split("://", 1)[1]
    port = host.rsplit(":", 1)[1]
    with httpx.Client(base_url=open_server.base) as http:
        assert http.get("/api/status", headers={"Origin": f"http://{host}"}).status_code == 200
        for origin in (
            f"https://{host}",  # the scheme counts
            f"ftp://{host}",
            "http://127.0.0.1:1",
            f"http://evil.example/{host}",
            f"http://user@{host}",
            f"http://localhost:{port}.evil.example",
        ):
            assert http.get("/api/status", headers={"Origin": origin}).status_code == 403, origin


# -------------------------------------------------------------------- tokens, sessions


def test_a_token_needs_16_non_blank_characters() -> None:
    for weak in (" " * 20, "\t" * 16 + "abc", "a b c d e f g h i j"):
        with pytest.raises(UsageError, match="non-blank"):
            check_binding("0.0.0.0", weak)
    check_binding("0.0.0.0", "x" * 16)


def test_token_generate_prints_a_strong_token(
    library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lbsearch.cli.serve import command

    seen: dict[str, object] = {}
    monkeypatch.setattr(command, "run_server", lambda *args, **kwargs: seen.update(args=args))
    done = CliRunner().invoke(
        app, ["serve", "--library", str(library), "--host", "0.0.0.0", "--token", "generate"]
    )
    assert done.exit_code == 0, done.output
    token = seen["args"][4]  # type: ignore[index]
    assert isinstance(token, str) and len(token) >= 32 and token != "generate"
    assert token in done.stderr


def test_bearer_is_case_insensitive_and_blank_tokens_fail(token_server: Running) -> None:
    with httpx.Client(base_url=token_server.base) as http:
        for scheme in ("Bearer", "bearer", "BEARER"):
            auth = {"Authorization": f"{scheme} {TOKEN}"}
            assert http.get("/api/status", headers=auth).status_code == 200, scheme
        for auth in ("Bearer x", f"Bearer{TOKEN}", "Basic " + TOKEN, TOKEN):
            got = http.get("/api/status", headers={"Authorization": auth})
            assert got.status_code == 401, auth


def test_each_login_gets_its_own_session_that_expires(library: Path) -> None:
    limits = ServeSettings(session_s=1.5)
    with serving(library, token=TOKEN, limits=limits) as run:
        cookies = []
        for _ in range(2):
            with httpx.Client(base_url=run.base) as browser:
                login = browser.get(f"/login?token={TOKEN}")
                assert login.status_code == 303
                header = login.headers["set-cookie"].lower()
                assert "httponly" in header and "samesite=strict" in header
                assert "max-age=1" in header and "secure" not in header  # no TLS here
                cookies.append(browser.cookies["lbsearch_session"])
                assert browser.get("/api/status").status_code == 200
        assert cookies[0] != cookies[1], "every login has a session of its own"
        time.sleep(1.7)
        with httpx.Client(base_url=run.base, cookies={"lbsearch_session": cookies[0]}) as late:
            assert late.get("/api/status").status_code == 401, "the session expired"


def _certificate(folder: Path) -> tuple[Path, Path] | None:
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_serves_https_with_secure_cookies(library: Path, tmp_path: Path) -> None:
    pair = _certificate(tmp_path)
    if pair is None:
        pytest.skip("no openssl to make a certificate")
    tls = (str(pair[0]), str(pair[1]))
    with serving(library, token=TOKEN, tls=tls) as run:
        assert run.base.startswith("https://")
        with httpx.Client(base_url=run.base, verify=False) as browser:
            login = browser.get(f"/login?token={TOKEN}")
            assert "secure" in login.headers["set-cookie"].lower()
            auth = {"Authorization": f"Bearer {TOKEN}"}
            assert browser.get("/api/status", headers=auth).status_code == 200
        plain = "http://" + run.base.split("://", 1)[1]
        with pytest.raises(httpx.HTTPError), httpx.Client() as http:
            http.get(plain + "/api/status", headers=auth)
