"""`lbsearch serve`: start the warm search service and its web page."""

from __future__ import annotations

import contextlib
import socket
import sys
from pathlib import Path  # typer reads the annotations at run time
from typing import TYPE_CHECKING, Annotated

import typer

from ..context import settings
from ..runtime_options import BackendOption, DeviceOption, DtypeOption, LibraryOption

if TYPE_CHECKING:
    from collections.abc import Callable

    import uvicorn
    from starlette.applications import Starlette

    from lbsearch.config import Config
    from lbsearch.embedder import Embedder
    from lbsearch.library import Library

    from ..query_server import Runtime
    from .app import ServeSettings
    from .security import Access
    from .service import EncodersFactory


def serve(
    ctx: typer.Context,
    library: LibraryOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="LBSEARCH_TOKEN",
            help="Require this secret (16+ non-blank characters; `generate` makes and prints a "
            "strong one): `Authorization: Bearer TOKEN`, or a browser cookie from the one-time "
            "login URL printed at start ($LBSEARCH_TOKEN).",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert", help="Serve HTTPS with this certificate (PEM); needs --tls-key."
        ),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The certificate's private key (PEM).")
    ] = None,
    backend: BackendOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
) -> None:
    """Serve the library: a web page at / to search and play results, and a JSON API.

    The encoders stay loaded between queries. The service follows a running `lbsearch index`:
    new files show up after each committed batch. Binds 127.0.0.1 unless told otherwise; any
    other address requires --token (and, on a network, --tls-cert/--tls-key so that the token
    does not travel in clear text). Stop it with Ctrl-C.
    """
    from ..query import quiet_idle_threads
    from .security import check_binding, generate_token

    quiet_idle_threads()
    if token == "generate":
        token = generate_token()
        _say(f"lbsearch serve: token {token}")
    check_binding(host, token)
    tls = _tls(tls_cert, tls_key)
    config = settings(ctx)
    factory = _embedder_factory(config, backend, device, dtype)
    run_server(
        config, library, host, port, token, factory, tls=tls, runtime=(backend, device, dtype)
    )


def _tls(cert: Path | None, key: Path | None) -> tuple[str, str] | None:
    from lbsearch.errors import UsageError

    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("HTTPS needs both --tls-cert and --tls-key", "give both files")
    for path in (cert, key):
        if not path.is_file():
            raise UsageError(f"{path}: no such file", "give the PEM files of the certificate")
    return str(cert), str(key)


def _embedder_factory(
    config: Config, backend: str | None, device: str | None, dtype: str | None
) -> EncodersFactory:
    """The embedder `lbsearch query` would use, on the checkpoints the library was indexed with."""

    def factory(lib: Library) -> Embedder:
        from lbsearch.search.shell import library_embedder

        return library_embedder(lib, config, backend=backend, device=device, dtype=dtype)

    return factory


def run_server(
    config: Config,
    library: Path | None,
    host: str,
    port: int,
    token: str | None,
    factory: EncodersFactory,
    *,
    ready: Callable[[uvicorn.Server, str], None] | None = None,
    limits: ServeSettings | None = None,
    tls: tuple[str, str] | None = None,
    runtime: Runtime = (None, None, None),
) -> None:
    """Open the library, bind, print where to go, serve until Ctrl-C (or `ready.should_exit`).

    `lbsearch query` on the same library asks this server over a local socket (`runtime`: the
    --backend/--device/--dtype given, which a query must match to be answered here)."""

    from lbsearch.library import locate_library

    from .app import ServeSettings, build_app, configure_logging
    from .local_socket import LocalSocket
    from .security import Access, is_loopback
    from .service import SearchService

    configure_logging()
    limits = limits or ServeSettings.from_config(config.serve)
    where = locate_library(library, config.library)
    service = SearchService(where, config, factory, poll_s=limits.reload_poll_s, limits=limits)
    local: LocalSocket | None = None
    try:
        local = LocalSocket.start(service, runtime)  # listening by the time "open ..." is said
        sock = _bind(host, port)
        access = Access(
            token=token,
            loopback_only=token is None and is_loopback(host),
            session_s=limits.session_s,
            tls=tls is not None,
            port=sock.getsockname()[1],
        )
        base = _announce(sock, host, service.root, access)
        server = _uvicorn(build_app(service, access, limits), limits, tls)
        if ready is not None:  # tests: where it listens, and the server to stop
            ready(server, base)
        service.start()
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a server is stopped
            server.run(sockets=[sock])  # uvicorn finishes open requests, then re-raises SIGINT
    finally:
        if local is not None:
            local.close()
        service.close()
    _say("lbsearch serve: stopped")


def _announce(sock: socket.socket, host: str, root: Path, access: Access) -> str:
    """Say where the library is and where to point a browser; returns the base URL."""
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if access.tls else "http"
    base = f"{scheme}://{shown}:{sock.getsockname()[1]}"
    _say(f"lbsearch serve: library {root}")
    if access.token:
        _say(f"open {base}/login?code={access.login_code} (one-time link; API: bearer token)")
    else:
        _say(f"open {base}/")
    return base


def _uvicorn(app: Starlette, limits: ServeSettings, tls: tuple[str, str] | None) -> uvicorn.Server:
    import uvicorn

    from .protocol import protocol_with_head_deadline

    config = uvicorn.Config(
        app,
        http=protocol_with_head_deadline(limits.head_timeout_s, limits.max_client_connections),
        log_level="warning",
        access_log=False,  # app.AccessLog writes one line per request
        timeout_keep_alive=5,
        limit_concurrency=limits.max_connections,  # past this, new ones get 503 at once
        timeout_graceful_shutdown=5,
        server_header=False,
        ssl_certfile=tls[0] if tls else None,  # uvicorn's own TLS
        ssl_keyfile=tls[1] if tls else None,
    )
    return uvicorn.Server(config)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: uvicorn writes a response's head and body separately,
    # and Nagle + delayed ACK would hold the body back 40 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        from lbsearch.errors import UsageError

        raise UsageError(
            f"cannot listen on {host}:{port}: {error.strerror or error}",
            "choose another --port (0 picks a free one) or stop what uses it",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
