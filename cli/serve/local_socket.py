"""`lbsearch serve` answers `lbsearch query` over a Unix domain socket in the library folder.

A cold `lbsearch query` spends most of its time starting Python, importing and loading the
text tower; with a server already warm on the same library, it asks over `serve.sock` instead
and answers in the warm time (the client and the exchange: cli/query_server.py).

Only the owner gets in: the socket is created 0600 (bound inside a private 0700 folder, then
renamed into place, so it never exists with wider permissions), and every connection's peer
uid (SO_PEERCRED, Linux) must be the server's. A request is one line of at most 64 KiB that
must arrive within a second; at most a few connections are handled at once (others are closed,
and their clients search locally). It runs only text searches through the server's own engine,
with the web API's bounds (at most 500 results, 20 moments): a client can neither make the
server read a file nor ask more of it than over HTTP. A stale socket (a server that died) is
replaced; anything else at that name (a file, a link, a live server's socket) is left alone
and the server runs without one. The socket is removed when the server stops.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lbsearch.errors import LbsearchError

from ..query_server import (
    MAX_REQUEST_BYTES,
    VERSION,
    Lines,
    Runtime,
    answer_to_wire,
    peer_uid,
    query_from_wire,
    settings_digest,
    socket_path,
)
from .forms import MAX_LIMIT

if TYPE_CHECKING:
    from lbsearch.embedder import Embedder
    from lbsearch.search import Query, SearchEngine
    from lbsearch.types import Modality

    from .service import SearchService, View

log = logging.getLogger("lbsearch.serve")

REQUEST_TIMEOUT_S = 1.0
MAX_CLIENTS = 4
MAX_MOMENTS = 20  # as /api/search
_MAX_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


class SocketUnavailable(Exception):
    """The socket cannot be created; the server runs without it."""


class LocalSocket:
    """The listener: a thread accepting connections, one short-lived thread per connection."""

    def __init__(self, service: SearchService, runtime: Runtime = (None, None, None)) -> None:
        self.service = service
        self.path = socket_path(service.root)
        self.runtime = list(runtime)
        self.digest = settings_digest(service.config)
        self._sock: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._thread: threading.Thread | None = None
        self._engine_lock = threading.Lock()
        self._engine: tuple[View, SearchEngine] | None = None
        self._embedder: tuple[dict[Modality, str], Embedder] | None = None

    @classmethod
    def start(cls, service: SearchService, runtime: Runtime = (None, None, None)) -> LocalSocket:
        """Listening, or not (said in the log): `lbsearch query` then starts cold."""
        listener = cls(service, runtime)
        try:
            listener._sock, listener._inode = bind_private(listener.path)
        except SocketUnavailable as why:
            log.info("no local socket for `lbsearch query`: %s", why)
            return listener
        listener._thread = threading.Thread(
            target=listener._accept_loop, name="lbsearch-local-socket", daemon=True
        )
        listener._thread.start()
        return listener

    @property
    def listening(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        """Stop accepting and remove the socket file (only if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            _remove_if_ours(self.path, self._inode)

    # ------------------------------------------------------------------------ serving

    def _accept_loop(self) -> None:
        assert self._sock is not None
        self._sock.settimeout(0.25)  # wakes up to notice close()
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.1)  # out of file descriptors, say: do not spin
                continue
            if not self._slots.acquire(blocking=False):
                conn.close()  # busy: that client searches locally
                continue
            threading.Thread(
                target=self._serve_one, args=(conn,), name="lbsearch-local-query", daemon=True
            ).start()

    def _serve_one(self, conn: socket.socket) -> None:
        try:
            with conn:
                if peer_uid(conn) not in (None, os.getuid()):
                    log.warning("local socket: refused a connection from another user")
                    return
                self._answer(conn)
        except OSError:  # the client went away: nothing to tell it
            pass
        finally:
            self._slots.release()

    def _answer(self, conn: socket.socket) -> None:
        started = time.perf_counter()
        line = Lines(conn).read(MAX_REQUEST_BYTES, time.monotonic() + REQUEST_TIMEOUT_S)
        query, why = self._parse(line)
        if query is None:
            conn.sendall(_line({"declined": why}))
            log.info("local socket: query declined (%s)", why)
            return
        conn.sendall(_line({"accepted": True}))
        try:
            answer = self._search(query)
        except Exception as error:  # the client searches locally and reports it its way
            conn.sendall(_line({"declined": "the search failed"}))
            log.warning("local socket: query failed: %s", error)
            return
        conn.sendall(_line(answer))
        took = (time.perf_counter() - started) * 1000
        log.info("local socket: query %d results %.0f ms", len(answer.get("rows", ())), took)

    def _parse(self, line: bytes | None) -> tuple[Query | None, str]:
        if line is None:
            return None, "no complete request in time"
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or request.get("v") != VERSION:
                return None, "another protocol version"
            if request.get("settings") != self.digest or request.get("runtime") != self.runtime:
                return None, "other settings than the server's"
            query = query_from_wire(request.get("query"))
        except (ValueError, TypeError, LbsearchError) as error:  # the client reports its own
            return None, f"a malformed request ({error})"[:200]
        if query.limit > MAX_LIMIT or query.moments > MAX_MOMENTS:
            return None, "more results or moments than the web API allows"
        return query, ""

    def _search(self, query: Query) -> dict[str, Any]:
        with self.service.view() as view:
            engine = self._engine_for(view)
            hits = engine.search(query)
            no_match = None if hits else engine.explain_no_match(query)
        return answer_to_wire(hits, no_match)

    def _engine_for(self, view: View) -> SearchEngine:
        """An engine on the view's library whose text tower is opened as `lbsearch query` opens
        it (quick start: ONNX Runtime without pre-packed weights). Pre-packing changes the last
        bits of a vector, and the answer must be what the query would print by itself; this
        second session is opened at the first query asked here (tens of milliseconds)."""
        from lbsearch.embedder import open_embedder

        from .examples import ServerEngine

        with self._engine_lock:
            if self._engine is None or self._engine[0] is not view:
                library = view.library
                models = {m: s.model_id for m, s in library.modality_states().items()}
                if self._embedder is None or self._embedder[0] != models:
                    backend, device, dtype = self.runtime
                    embedder = open_embedder(
                        self.service.config,
                        models=models,
                        backend=backend,
                        device=device,
                        dtype=dtype,
                        quick_start=True,
                    )
                    self._embedder = (models, embedder)
                engine = ServerEngine(library, self.service.config, self._embedder[1])
                self._engine = (view, engine)
            return self._engine[1]


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode("utf-8") + b"\n"


# ------------------------------------------------------------------- creating it safely


def bind_private(path: Path) -> tuple[socket.socket, tuple[int, int]]:
    """A listening socket at `path`, 0600 from the start; returns it and its (device, inode)."""
    if not hasattr(socket, "AF_UNIX"):
        raise SocketUnavailable("this platform has no Unix domain sockets")
    if len(os.fsencode(path)) > _MAX_PATH:
        raise SocketUnavailable(f"{path}: the path is too long for a socket")
    _clear_stale(path)
    private = Path(tempfile.mkdtemp(prefix=".serve-", dir=path.parent))  # 0700: ours alone
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        temp = private / "s"
        sock.bind(str(temp))
        temp.chmod(0o600)  # inside a folder nobody else can enter: not raceable
        sock.listen(16)
        temp.replace(path)  # atomic: replaces a stale socket (a link itself, never its target)
        info = path.lstat()
    except OSError as error:
        sock.close()
        raise SocketUnavailable(f"{path}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return sock, (info.st_dev, info.st_ino)


def _clear_stale(path: Path) -> None:
    """Nothing there, or a stale socket of ours (removed); otherwise SocketUnavailable."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as error:
        raise SocketUnavailable(f"{path}: {error.strerror}") from None
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.getuid():
        raise SocketUnavailable(f"{path} exists and is not a socket of this user's; left alone")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(str(path))
    except OSError:  # nobody listens: a server that died left it
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise SocketUnavailable(f"{path}: another `lbsearch serve` answers there")


def _remove_if_ours(path: Path, inode: tuple[int, int] | None) -> None:
    try:
        info = path.lstat()
    except OSError:
        return
    if inode == (info.st_dev, info.st_ino):  # not a newer server's socket
        path.unlink(missing_ok=True)
