"""Decoding one file on the caller's side, within the per-file time limit."""

from __future__ import annotations

import threading
from pathlib import Path

from ..config import Config
from ..types import MediaSpec, Segment


def decode_in_time(path: Path, spec: MediaSpec, config: Config) -> list[Segment]:
    """`media.decode` in a helper thread, given up after media.decode_timeout_s (0: no limit).

    One example file does not justify a worker process; a decoder stuck past the limit is left
    to finish in its daemon thread while the query fails with a `decode_timeout` MediaError.
    """
    from . import decode
    from .reasons import media_error

    limit = config.media.decode_timeout_s
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["segments"] = decode(path, spec, config)
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=work, name="lbsearch-decode", daemon=True)
    thread.start()
    thread.join(limit if limit and limit > 0 else None)
    if thread.is_alive():
        raise media_error(path, "decode_timeout", f"decoding took longer than {limit:g} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    segments = outcome["segments"]
    assert isinstance(segments, list)
    return segments
