"""A clip of an indexed file cut in a decode worker (the web service's clip route).

Cutting decodes and encodes (seconds of CPU, FFmpeg's memory), so a server never does it in its
own process: `ClipTask` runs in the shared decode pool's workers (media.shared_pool), with their
time limit (decode_timeout_s without an answer) and memory cap (max_worker_memory_mb). The worker
opens the file again through `open_indexed` (an indexed row, inside a root, no link, the recorded
device, inode, size and mtime), so a file swapped after the server's own check is refused there
("vanished"), and cuts from that handle only (clip.cut_opened).

The clip is written to `out`, a file in a private folder the caller made and removes; the answer
is a small JSON object: the span covered and how ({"start_s", "end_s", "video", "audio"}), or
{"error", "hint"} for a span the file cannot give (an end past its end), which the caller turns
into its own answer (HTTP 422). Other failures are MediaErrors as for any decode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LbsearchError, MediaError, UsageError
from .indexed import Roots, reopen_in_worker
from .worker import WorkerTask

if TYPE_CHECKING:
    from ..catalog.records import FileRecord
    from ..config import Config


@dataclass(frozen=True)
class ClipAnswer:
    """What a ClipTask's bytes say: the span written and how, or why none was."""

    start_s: float = 0.0
    end_s: float = 0.0
    video: str | None = None
    audio: str | None = None
    error: str | None = None
    hint: str = ""

    @classmethod
    def parse(cls, payload: bytes) -> ClipAnswer:
        return cls(**json.loads(payload))

    def to_bytes(self) -> bytes:
        return json.dumps(self.__dict__).encode()


@dataclass(frozen=True)
class ClipTask(WorkerTask):
    """[start_s - pad_s, end_s + pad_s] of `file` (clamped to it) written to `out`."""

    file: FileRecord
    roots: Roots
    start_s: float
    end_s: float
    pad_s: float
    out: str

    def run(self, cfg: Config) -> bytes:
        from .clip import cut_opened

        path = self.file.path
        with reopen_in_worker(self.file, self.roots) as handle:
            try:
                done = cut_opened(
                    handle, Path(path), self.start_s, self.end_s, Path(self.out), self.pad_s
                )
            except UsageError as error:  # the span: the caller's answer, not a broken file
                return ClipAnswer(error=error.message, hint=error.hint).to_bytes()
            except MediaError:
                raise
            except LbsearchError as error:  # no picture or sound, a codec FFmpeg refused
                raise MediaError(path, "corrupt", error.message, error.hint) from None
        return ClipAnswer(done.start_s, done.end_s, done.video, done.audio).to_bytes()
