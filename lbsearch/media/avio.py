"""PyAV plumbing shared by the video and audio decoders: opening, stream choice, error mapping.

PyAV reads through the already-opened Python file object (see fileio), never by path. Decoding is
done packet by packet so that one damaged packet is skipped, as players do, instead of ending the
file; only a file where nothing decodes is reported as corrupt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import MediaError
from .reasons import media_error
from .sniff import header_proves_truncation

if TYPE_CHECKING:
    from av.container import InputContainer

MAX_BAD_PACKETS = 200  # past this many undecodable packets the stream is garbage: stop


@contextmanager
def open_container(handle: BinaryIO, path: Path) -> Iterator[InputContainer]:
    """av.open on the file object; any PyAV failure inside the block becomes a MediaError."""
    import av

    if header_proves_truncation(handle):
        raise media_error(path, "truncated", "the container's size fields reach past the end")
    handle.seek(0)
    try:
        with av.open(handle, mode="r", metadata_errors="ignore") as box:
            yield box
    except MediaError:
        raise
    except av.FFmpegError as exc:
        raise media_error(path, "corrupt", ffmpeg_detail(exc)) from None
    except (ValueError, IndexError, TypeError, OverflowError, ZeroDivisionError) as exc:
        # PyAV surfaces odd header values this way (e.g. a zero time base)
        raise media_error(path, "corrupt", f"{type(exc).__name__}: {exc}") from None


def first_video_stream(box: InputContainer) -> Any:
    """The first video stream that is not cover art (an MP3's attached picture), or None."""
    import av

    for stream in box.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def decoded_frames(
    box: InputContainer, stream: Any, before: Callable[[Any], None] | None = None
) -> Iterator[Any]:
    """Frames of `stream` from the current position, skipping packets the decoder rejects.

    A demuxer error (a cut or garbled container) ends the stream like EOF; the caller decides
    whether what came before is enough. `before(packet)` runs ahead of each decode call (to set
    decoder options such as skip_frame per packet).
    """
    import av

    bad = 0
    packets = box.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError:
            return
        if before is not None:
            before(packet)
        try:
            yield from stream.decode(packet)
        except av.FFmpegError:
            bad += 1
            if bad > MAX_BAD_PACKETS:
                return


def timeline_origin(box: InputContainer) -> float:
    """Seconds that count as t = 0 for all of a file's segments: the video stream's start if
    there is one (so sound-track windows carry the video's timestamps), else the audio's."""
    stream = first_video_stream(box)
    if stream is None and box.streams.audio:
        stream = box.streams.audio[0]
    if stream is None or stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def ffmpeg_detail(exc: BaseException) -> str:
    """FFmpeg's complaint without the name PyAV attaches: we open files through a Python file
    object, so that name is a descriptor number ('6'), which tells the user nothing; the
    MediaError already names the file."""
    reason = getattr(exc, "strerror", None) or str(exc)
    return f"FFmpeg cannot read it ({reason[:1].lower()}{reason[1:]})"


def as_media_error(path: Path, exc: BaseException) -> MediaError:
    """Map an unexpected exception escaping a decoder to a reason (MediaErrors pass through)."""
    import av

    if isinstance(exc, MediaError):
        return exc
    if isinstance(exc, av.FFmpegError):
        return media_error(path, "corrupt", ffmpeg_detail(exc))
    if isinstance(exc, MemoryError):
        return media_error(path, "corrupt", "the decoder ran out of memory (implausible sizes)")
    return media_error(path, "decode_error", f"{type(exc).__name__}: {exc}")
