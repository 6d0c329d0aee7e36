"""decode(): one file -> the segments for one encoder, or a MediaError with a reason code."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..config import Config
from ..errors import MediaError
from ..types import MediaSpec, Modality, Segment
from .avio import as_media_error
from .fileio import open_media
from .reasons import media_error


def decode(path: Path, spec: MediaSpec, cfg: Config) -> list[Segment]:
    """All the segments of `path` for the encoder described by `spec` (see `decode_stream`)."""
    return list(decode_stream(path, spec, cfg))


def decode_stream(path: Path, spec: MediaSpec, cfg: Config) -> Iterator[Segment]:
    """The segments of `path` for the encoder described by `spec`, yielded as they are made.

    Images, thermal pictures and depth maps give one segment (start = end = 0); videos one per
    window of `video.segment_seconds`; audio one per window of `spec.target_length` fbank frames.
    A video decoded with an AUDIO spec gives its sound track, one segment per video window with
    that window's start and end.
    Deterministic: the same file always gives the same tensors. Every failure is a MediaError
    whose `reason` is one of `REASONS`; nothing else escapes.
    """
    path = Path(path)
    try:
        if spec.modality is Modality.VIDEO and cfg.video.backend == "decord":
            yield from _decode_decord(path, spec, cfg)
            return
        with open_media(path, cfg.media.max_file_bytes) as (handle, _):
            yield from _dispatch(handle, path, spec, cfg)
    except MediaError:
        raise
    except Exception as exc:  # a decoder bug or an exotic failure: still a typed skip
        raise as_media_error(path, exc) from exc


def _dispatch(handle: BinaryIO, path: Path, spec: MediaSpec, cfg: Config) -> Iterable[Segment]:
    from . import audio, image, video

    pixels = cfg.media.max_image_pixels
    if spec.modality in (Modality.IMAGE, Modality.THERMAL):
        tensor = image.load_picture(handle, path, spec.image_size, pixels)
    elif spec.modality is Modality.DEPTH:
        tensor = image.load_depth(handle, path, spec.image_size, pixels, spec.max_depth)
    elif spec.modality is Modality.VIDEO:
        return video.decode_video(handle, path, spec, cfg)
    elif spec.modality is Modality.AUDIO:
        return audio.decode_audio(handle, path, spec, cfg)
    else:  # pragma: no cover - Modality is closed
        raise media_error(path, "unsupported_type", f"no decoder for {spec.modality}")
    return [Segment(str(path), spec.modality, 0.0, 0.0, tensor)]


def _decode_decord(path: Path, spec: MediaSpec, cfg: Config) -> list[Segment]:
    # decord decodes in its own threads and returns whole batches: kept as a list
    from .fileio import check_unchanged, stat_regular
    from .video_decord import decode_video_decord

    before = stat_regular(path, cfg.media.max_file_bytes)
    segments = decode_video_decord(path, spec, cfg)
    check_unchanged(path, before)
    return segments
