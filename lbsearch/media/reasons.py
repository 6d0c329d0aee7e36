"""Stable reason codes for files that cannot become encoder input, and the hint shown for each.

The codes are part of lbsearch's contract: the catalog stores them and users filter on them, so a
code is never renamed. `media_error` is the one way the media package builds a MediaError.
"""

from __future__ import annotations

from ..errors import MediaError

# code -> one-line meaning
REASONS: dict[str, str] = {
    "not_found": "the file does not exist (when decoding starts)",
    "vanished": "the file was removed, replaced or modified while it was being decoded",
    "not_regular_file": "a FIFO, socket, device or directory; never opened",
    "unreadable": "permission denied or an I/O error while reading",
    "empty_file": "the file has zero bytes",
    "too_large": "the file is larger than media.max_file_bytes",
    "unsupported_type": "not an image, depth map, video or audio file lbsearch handles",
    "corrupt": "the decoder rejected the content (damaged, or not what its name says)",
    "truncated": "the file ends before its content does",
    "decompression_bomb": "the image has more pixels than media.max_image_pixels",
    "not_depth_map": "a depth file that is not a single-channel 16-bit (mm) or float map",
    "no_video_frames": "no video stream, or none of its frames decodes",
    "no_audio": "no audio stream, or none of its samples decodes",
    "audio_too_short": "shorter than one fbank frame (400 samples at 16 kHz = 25 ms)",
    "decode_timeout": "decoding took longer than media.decode_timeout_s",
    "decoder_crashed": "the decoder process died (a crash in a native library, or out of memory)",
    "out_of_memory": "decoding needed more memory than media.max_worker_memory_mb",
    "decode_error": "an unexpected error in lbsearch's decoder (please report it)",
}

_HINTS: dict[str, str] = {
    "not_found": "check the path; the file may have been moved or deleted",
    "vanished": "the file changed during indexing; run the index again once it is stable",
    "not_regular_file": "only regular files are indexed",
    "unreadable": "check the file's permissions and the disk",
    "empty_file": "the file has no content; re-export or re-copy it",
    "too_large": "raise media.max_file_bytes (0 disables the limit) if the file is wanted",
    "unsupported_type": "use --as MODALITY if the file really is media",
    "corrupt": "open the file in a media player to check it; re-export it if damaged",
    "truncated": "the file is incomplete (interrupted copy or download); copy it again",
    "decompression_bomb": "raise media.max_image_pixels if the image is genuine",
    "not_depth_map": "depth maps must be 16-bit PNG/TIFF in millimetres or .npy in metres",
    "no_video_frames": "check the file in a media player",
    "no_audio": "the file has no usable sound",
    "audio_too_short": "audio under 25 ms cannot be embedded",
    "decode_timeout": "raise media.decode_timeout_s for very large files",
    "decoder_crashed": "check the file in a media player; it may be damaged",
    "out_of_memory": "raise media.max_worker_memory_mb (0 disables the limit) if the file is genuine",
    "decode_error": "re-run with the file alone and report the error",
}


def media_error(path: str | object, reason: str, detail: str) -> MediaError:
    """A MediaError with a known reason code and its standard hint."""
    if reason not in REASONS:  # a typo here would silently create a new public code
        raise ValueError(f"unknown media reason code {reason!r}")
    return MediaError(str(path), reason, detail, _HINTS[reason])
