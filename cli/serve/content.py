"""Serving a catalog file's bytes, with HTTP Range support (video seeking).

Only files the catalog knows are served, chosen by id; the path comes from the catalog, never
from the request, and the file is opened by the core's one way to open an indexed file
(`lbsearch.media.indexed`: an indexed row, inside a root, no link, the recorded device, inode,
size and mtime). Anything else is refused (404) before a byte is read.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from starlette.responses import Response, StreamingResponse

from lbsearch.media.indexed import NotServable, Roots, open_indexed

if TYPE_CHECKING:
    from lbsearch.catalog.records import FileRecord

__all__ = ["ByteRange", "NotServable", "file_response", "media_type", "parse_range"]

_CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_EXTRA_TYPES = {".npy": "application/octet-stream", ".m4a": "audio/mp4", ".flac": "audio/flac"}


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def media_type(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()  # noqa: PTH122 - a catalog string, not a Path
    return _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def parse_range(header: str | None, size: int) -> ByteRange | str | None:
    """None: no (usable) Range, serve everything; "unsatisfiable": answer 416.

    One range is served; a multi-range request gets the whole file (allowed by RFC 9110)."""
    if not header or "," in header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            return "unsatisfiable"
        return ByteRange(max(0, size - count), size - 1)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return ByteRange(start, end)


def file_response(record: FileRecord, roots: Roots, range_header: str | None) -> Response:
    handle, st = open_indexed(record, roots)
    size = st.st_size
    wanted = parse_range(range_header, size)
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=3600",
        # a media file is never a page: no scripts, no framing, even if a browser were asked
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cross-Origin-Resource-Policy": "same-origin",  # no other site may embed it
        "X-Content-Type-Options": "nosniff",
    }
    kind = media_type(record.path)
    if wanted == "unsatisfiable":
        handle.close()
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    if wanted is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_read(handle, 0, size), 200, headers, media_type=kind)
    assert isinstance(wanted, ByteRange)
    headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    headers["Content-Length"] = str(wanted.length)
    return StreamingResponse(
        _read(handle, wanted.start, wanted.length), 206, headers, media_type=kind
    )


def _read(handle: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """Chunks of the opened file (Starlette runs this iterator in worker threads)."""
    with handle:
        handle.seek(start)
        left = length
        while left > 0:
            chunk = handle.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
