"""`lbsearch query` asks a running `lbsearch serve` over the library's local socket: the same
output both ways, a fallback within 100 ms, and a socket only its owner can use."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lbsearch.cli import query_server
from lbsearch.cli.serve import local_socket
from lbsearch.cli.serve.local_socket import LocalSocket
from lbsearch.config import load_config
from lbsearch.search import Hit, Query, QueryRequest, Term, parse_query
from lbsearch.search.moments import Match, Moment
from lbsearch.testing.samples import write_sample_media
from lbsearch.types import Modality

HIT = Hit(
    path="/media/a.mp4",
    modality=Modality.VIDEO,
    score=0.123456789012,
    start_s=10.0,
    end_s=20.0,
    segment_id=7,
    duration_s=30.5,
    size=1234,
    mtime=1_700_000_000.25,
    relevance=3.3333333333,
    moments=(Moment(10.0, 20.0, 3.1, 0.2, 0.1, 3.1, None, 10.0, 20.0),),
)


class _View:
    def __init__(self, hits: list[Hit]) -> None:
        self.engine = self
        self.hits = hits
        self.asked: list[Query] = []

    def search(self, query: Query) -> list[Hit]:
        self.asked.append(query)
        return self.hits

    def explain_no_match(self, query: Query) -> str:
        return "nothing is indexed"


class _Service:
    """What the listener uses of a SearchService."""

    def __init__(self, root: Path, hits: list[Hit]) -> None:
        self.root = root
        self.config = load_config()
        self.current = _View(hits)

    @contextlib.contextmanager
    def view(self) -> Iterator[_View]:
        yield self.current


@pytest.fixture(autouse=True)
def stub_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stub service's engine (the real one opens the text tower as `query` does: tested
    end to end below)."""
    monkeypatch.setattr(LocalSocket, "_engine_for", lambda self, view: view.engine)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[_Service, LocalSocket]]:
    service = _Service(tmp_path, [HIT])
    listener = LocalSocket.start(service)  # type: ignore[arg-type]
    assert listener.listening
    try:
        yield service, listener
    finally:
        listener.close()


def _ask(root: Path, query: Query | None = None) -> query_server.Answer | None:
    query = query or Query((Term("a dog"),))
    return query_server.ask_server(root, load_config(), query, (None, None, None))


def test_the_socket_is_the_owners_alone_and_removed_at_exit(
    served: tuple[_Service, LocalSocket],
) -> None:
    service, listener = served
    info = (service.root / "serve.sock").lstat()
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.getuid()
    assert [p.name for p in service.root.iterdir()] == ["serve.sock"], "no temporary left"
    listener.close()
    assert not (service.root / "serve.sock").exists()


def test_an_answer_carries_the_hits_whole_and_their_json_rows(
    served: tuple[_Service, LocalSocket],
) -> None:
    from lbsearch.search.shell import hit_json

    service, _ = served
    request = QueryRequest(texts=("a dog:2",), nots=("cat",), paths=("./x/*",), after="2024-05-01")
    query = parse_query(request)
    answer = _ask(service.root, query)
    assert answer is not None and answer.no_match is None
    assert answer.hits == [HIT]
    assert answer.rows == [json.loads(json.dumps(hit_json(1, HIT)))]
    (asked,) = service.current.asked
    assert asked.terms == query.terms and asked.after == query.after
    assert asked.path_globs == (str(Path.cwd() / "x") + "/*",), "the client's folder, not its"
    service.current.hits = []
    assert _ask(service.root, query) == query_server.Answer([], [], "nothing is indexed")


@pytest.mark.parametrize(
    ("query", "runtime"),
    [
        (Query((Term("a dog"),), limit=501), (None, None, None)),  # more than /api/search
        (Query((Term("a dog"),), moments=21), (None, None, None)),
        (Query((Term("a dog"),)), ("torch", None, None)),  # the server runs another back-end
    ],
)
def test_what_the_server_would_answer_otherwise_is_declined(
    served: tuple[_Service, LocalSocket], query: Query, runtime: query_server.Runtime
) -> None:
    service, _ = served
    assert query_server.ask_server(service.root, load_config(), query, runtime) is None
    assert service.current.asked == []


def test_other_settings_are_declined(served: tuple[_Service, LocalSocket], tmp_path: Path) -> None:
    service, _ = served
    other = tmp_path / "other.toml"
    other.write_text("[relevance]\nmin_relevance = 1.0\n")
    answer = query_server.ask_server(
        service.root, load_config(other), Query((Term("a dog"),)), (None, None, None)
    )
    assert answer is None and service.current.asked == []


def _raw(root: Path, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(root / "serve.sock"))
        with contextlib.suppress(OSError):
            sock.sendall(payload)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                data += chunk
        return data


def test_oversized_slow_and_malformed_requests_get_nothing_or_a_decline(
    served: tuple[_Service, LocalSocket],
) -> None:
    service, _ = served
    assert b"accepted" not in _raw(service.root, b"x" * (70 * 1024))
    for bad in (b"not json\n", b'{"v": 1, "query": {"terms": "x"}}\n', b"[]\n"):
        assert json.loads(_raw(service.root, bad)).get("declined")
    started = time.monotonic()
    assert b"accepted" not in _raw(service.root, b'{"v": 1')  # never finished: cut off
    assert time.monotonic() - started < 3
    assert service.current.asked == []


def test_a_peer_of_another_user_is_refused(
    served: tuple[_Service, LocalSocket], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, _ = served
    monkeypatch.setattr(local_socket, "peer_uid", lambda sock: os.getuid() + 1)
    assert _ask(service.root) is None and service.current.asked == []


def test_nothing_answering_falls_back_within_100_ms(tmp_path: Path) -> None:
    path = tmp_path / "serve.sock"
    for listening in (False, True):  # a dead server's socket; one that never answers
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
            mute.bind(str(path))
            if listening:
                mute.listen(1)
            started = time.perf_counter()
            assert _ask(tmp_path) is None
            assert time.perf_counter() - started < 0.2
        path.unlink()
    assert _ask(tmp_path) is None  # no socket at all


def test_a_stale_socket_is_replaced_anything_else_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "serve.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
    listener = LocalSocket.start(_Service(tmp_path, [HIT]))  # type: ignore[arg-type]
    assert listener.listening and _ask(tmp_path) is not None
    second = LocalSocket.start(_Service(tmp_path, []))  # type: ignore[arg-type]
    assert not second.listening, "a live server's socket is not taken over"
    second.close()
    assert _ask(tmp_path) is not None
    listener.close()
    target = tmp_path / "target"
    target.write_text("keep")
    for make in (lambda: path.write_text("mine"), lambda: path.symlink_to(target)):
        make()
        refused = LocalSocket.start(_Service(tmp_path, [HIT]))  # type: ignore[arg-type]
        assert not refused.listening
        refused.close()
        assert path.is_symlink() or path.read_text() == "mine"
        path.unlink()
    assert target.read_text() == "keep"


def test_example_files_and_no_server_search_here(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import PurePath

    assert query_server.wanted(False, Query((Term("a dog"),)))
    assert not query_server.wanted(True, Query((Term("a dog"),)))
    assert not query_server.wanted(False, Query((Term(file=Path(PurePath("x.jpg"))),)))
    monkeypatch.setenv("LBSEARCH_NO_SERVER", "1")
    assert not query_server.wanted(False, Query((Term("a dog"),)))


def test_the_wire_refuses_wrong_types() -> None:
    good = query_server.query_to_wire(Query((Term("a"),), match=Match.BOTH))
    assert query_server.query_from_wire(json.loads(json.dumps(good))).match is Match.BOTH
    for name, value in (("limit", "20"), ("cut", 1), ("terms", [["a"]]), ("after", True)):
        with pytest.raises(ValueError, match=r"type|term"):
            query_server.query_from_wire({**good, name: value})
    with pytest.raises(ValueError, match="fields"):
        query_server.query_from_wire({**good, "like": ["/etc/passwd"]})


# ---------------------------------------------------- a real `lbsearch serve` process


@pytest.fixture(scope="module")
def tiny_library(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from serve_helpers import index_folder

    from lbsearch.embedder import open_embedder

    base = tmp_path_factory.mktemp("socket-tiny")
    write_sample_media(base / "media")
    config = load_config(tiny_config)
    index_folder(base / "media", base / "library", open_embedder(config), config)
    return base / "library"


def _lbsearch(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lbsearch", "--config", str(config), *args]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_query_through_a_running_server_prints_what_it_prints_alone(
    tiny_config: Path, tiny_library: Path
) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # ONNX Runtime: what a cold query runs on a CPU; both sides open the text tower the same
    # way (quick start, one thread), so the vectors agree to the last bit
    common = ["--library", str(tiny_library), "--backend", "onnxruntime"]
    server = subprocess.Popen(
        _lbsearch(tiny_config, "serve", *common, "--port", "0"),
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stderr is not None
        base = ""
        for line in server.stderr:
            match = re.search(r"open (http://127\.0\.0\.1:\d+)/", line)
            if match:
                base = match.group(1)
                break
        # up, idle and with its text tower exported (a first export takes seconds, past the
        # client's patience: that query would run here, as it should)
        warm = httpx.get(f"{base}/api/search", params={"q": "warm"}, timeout=120)
        assert warm.status_code == 200
        sock = tiny_library / "serve.sock"
        assert stat.S_IMODE(sock.lstat().st_mode) == 0o600
        outputs: dict[str, Any] = {}
        for how in ("--json", "--paths"):
            query = _lbsearch(tiny_config, "query", "a dog barking", how, *common)
            outputs[how] = [_run(query), _run([*query, "--no-server"])]
        none = _run(_lbsearch(tiny_config, "query", "a dog", "--path", "/nowhere/*", *common))
        # answered by the server, the client parses its query without numpy (about a tenth of
        # a second of a cold query; before, `lbsearch.search` loaded it with the engine), ...
        timed = _lbsearch(tiny_config, "query", "a dog barking", "--json", *common)
        imports = _run([timed[0], "-X", "importtime", *timed[1:]])
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
        rest = server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    for served, alone in outputs.values():
        assert served.returncode == alone.returncode == 0, served.stderr + alone.stderr
    served, alone = outputs["--paths"]
    assert served.stdout == alone.stdout and served.stdout
    served, alone = outputs["--json"]
    assert served.stdout == alone.stdout and served.stdout
    assert none.returncode == 1 and none.stderr.strip()
    assert imports.returncode == 0 and imports.stdout == served.stdout
    # nor the catalog (22 dataclasses, ~20 ms) or SQLAlchemy, nor pydantic (typer 0.29
    # imported it and built a validator per option at each start: ~0.17 s)
    for heavy in ("numpy", "sqlalchemy", "lbsearch.catalog.records", "pydantic"):
        found = re.search(rf"\| +{re.escape(heavy)}$", imports.stderr, re.M)
        assert not found, f"{heavy} imported by the client"
    answered = re.findall(r"local socket: query (\d+) results", rest)
    assert len(answered) == 4, rest  # --json twice, --paths and the one without a match
    assert not sock.exists(), "removed at exit"
    assert "Traceback" not in rest


@pytest.mark.parametrize(
    "reply",
    [b"[1]\n", b'{"accepted": true}\n[]\n', b'{"accepted": true}\n{"hits": [{"x": 1}]}\n'],
)
def test_a_reply_of_the_wrong_shape_means_search_here(tmp_path: Path, reply: bytes) -> None:
    import threading

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as odd:
        odd.bind(str(tmp_path / "serve.sock"))
        odd.listen(1)

        def answer() -> None:
            conn, _ = odd.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(reply)

        threading.Thread(target=answer, daemon=True).start()
        assert _ask(tmp_path) is None
