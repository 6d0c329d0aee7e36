"""A real `lbsearch serve` HTTP server on 127.0.0.1 in a thread, over a library indexed with the
fake encoders, for the API and browser tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbsearch.cli.serve.app import ServeSettings
from lbsearch.cli.serve.command import run_server
from lbsearch.config import Config, load_config
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.library import Library
from lbsearch.testing.fake_encoders import FakeEncoders


@dataclass
class Running:
    base: str
    server: Any
    thread: threading.Thread


def index_folder(media: Path, library: Path, encoders: Any, config: Config | None = None) -> None:
    config = config or load_config()
    with Library.open(library, config=config, write=True) as lib:
        run_index([media], lib, encoders, config, IndexOptions(), lambda event: None)


@contextmanager
def serving(
    library: Path,
    *,
    token: str | None = None,
    host: str = "127.0.0.1",
    factory: Callable[[Library], Any] | None = None,
    config: Config | None = None,
    limits: ServeSettings | None = None,
    tls: tuple[str, str] | None = None,
) -> Iterator[Running]:
    """Start the server on a free port; stop it (as Ctrl-C would) when the block ends."""
    config = config or load_config()
    started = threading.Event()
    box: dict[str, Any] = {}

    def ready(server: Any, base: str) -> None:
        box.update(server=server, base=base)
        started.set()

    def main() -> None:
        try:
            run_server(
                config,
                library,
                host,
                0,
                token,
                factory or (lambda lib: FakeEncoders()),
                ready=ready,
                limits=limits,
                tls=tls,
            )
        except BaseException as error:
            box["error"] = error
            started.set()

    thread = threading.Thread(target=main, name="serve-under-test", daemon=True)
    thread.start()
    assert started.wait(60), "the server did not start"
    if "error" in box:
        raise box["error"]
    server = box["server"]
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.02)
    try:
        yield Running(box["base"], server, thread)
    finally:
        server.should_exit = True
        thread.join(30)
