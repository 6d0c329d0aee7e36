"""Content sniffing: what a file's first bytes say it is, and whether its header proves a cut.

Extensions lie (a PNG saved as .jpg, a video named .bin, a download with no extension), so the
classifier asks the bytes. Only formats with an unambiguous signature are recognised here;
containers that may hold video or only sound (MP4, Matroska/WebM, Ogg, ASF) are reported as such
and probed with PyAV by the caller.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

HEAD_BYTES = 512  # enough for every signature below (MPEG-TS needs the sync byte at 188)

# sniffed kind -> family: "image", "video", "audio", "npy", or "container" (probe needed)
FAMILIES: dict[str, str] = {
    "jpeg": "image",
    "png": "image",
    "gif": "image",
    "bmp": "image",
    "webp": "image",
    "tiff": "image",
    "heif": "image",
    "avif": "image",
    "jp2": "image",
    "npy": "npy",
    "wav": "audio",
    "aiff": "audio",
    "flac": "audio",
    "mp3": "audio",
    "adts": "audio",
    "amr": "audio",
    "m4a": "audio",
    "avi": "video",
    "flv": "video",
    "mpegts": "video",
    "mpegps": "video",
    "isobmff": "container",
    "matroska": "container",
    "ogg": "container",
    "asf": "container",
}

_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jp2"),
    (b"\x93NUMPY", "npy"),
    (b"fLaC", "flac"),
    (b"ID3", "mp3"),
    (b"#!AMR", "amr"),
    (b"FLV\x01", "flv"),
    (b"\x1a\x45\xdf\xa3", "matroska"),
    (b"OggS", "ogg"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf"),
    (b"\x00\x00\x01\xba", "mpegps"),
)
_RIFF_FORMS = {b"WAVE": "wav", b"AVI ": "avi", b"WEBP": "webp", b"RF64": "wav"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"hevc"}
_AVIF_BRANDS = {b"avif", b"avis"}


def sniff(head: bytes) -> str | None:
    """The kind of content `head` (the first HEAD_BYTES bytes) starts, or None if unknown."""
    for prefix, kind in _PREFIXES:
        if head.startswith(prefix):
            return kind
    if head[:4] in (b"RIFF", b"RF64") and len(head) >= 12:
        return _RIFF_FORMS.get(head[8:12])
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:2] == b"BM" and len(head) >= 14 and head[6:10] == b"\x00\x00\x00\x00":
        return "bmp"  # BM + size + two reserved zero words
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "heif"
        if brand in _AVIF_BRANDS:
            return "avif"
        return "m4a" if brand in _AUDIO_BRANDS else "isobmff"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "mpegts"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF0 == 0xF0:
        return "adts" if head[1] & 0x06 == 0 else "mp3"  # layer bits 00 = AAC ADTS
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "mp3"  # MPEG-2.5 frame sync
    return None


def header_proves_truncation(handle: BinaryIO) -> bool:
    """True if the file's own size fields (RIFF, ISO-BMFF boxes) reach past its end.

    Used to tell `truncated` from `corrupt` when a decoder fails: an interrupted copy of an MP4 or
    WAV keeps its header but loses the tail. Streams without a global size (MP3, Ogg, TS) cannot
    prove anything and decode up to the cut.
    """
    size = os.fstat(handle.fileno()).st_size
    handle.seek(0)
    head = handle.read(12)
    if head[:4] == b"RIFF" and len(head) >= 8:
        (declared,) = struct.unpack("<I", head[4:8])
        return 0 < declared < 0xFFFFFFFF - 8 and declared + 8 > size  # streamers write 0/-1
    if head[4:8] == b"ftyp":
        return _boxes_overrun(handle, size)
    return False


def _boxes_overrun(handle: BinaryIO, size: int) -> bool:
    """Walk the top-level ISO-BMFF boxes; a box extending past the end means a cut file."""
    offset, seen_moov = 0, False
    for _ in range(10000):  # a bound, in case of a pathological box chain
        if offset >= size:
            return not seen_moov
        handle.seek(offset)
        header = handle.read(16)
        if len(header) < 8:
            return True
        box_size, box_type = struct.unpack(">I4s", header[:8])
        if box_size == 1 and len(header) == 16:
            (box_size,) = struct.unpack(">Q", header[8:16])
        elif box_size == 0:  # "extends to the end of the file"
            return not seen_moov and box_type != b"moov"
        if box_size < 8:
            return False  # not a box structure we can reason about: leave it to the decoder
        seen_moov = seen_moov or box_type == b"moov"
        if offset + box_size > size:
            return True
        offset += box_size
    return False
