"""Which encoder a file goes to: by extension, by content where the extension lies or is missing,
and by configurable path globs for depth and thermal pictures (ordinary PNG/TIFF/JPEG files).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path, PurePath
from typing import Any

from ..config import ClassifyConfig
from ..errors import MediaError
from ..types import Modality
from .fileio import open_media
from .reasons import media_error
from .sniff import FAMILIES, HEAD_BYTES, sniff

# fmt: off
IMAGE_EXTS = frozenset([
    "jpg", "jpeg", "jpe", "jfif", "png", "webp", "bmp", "dib", "gif", "tif", "tiff", "heic",
    "heif", "avif", "jp2", "j2k", "ppm", "pgm", "pbm",
])
VIDEO_EXTS = frozenset([
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "wmv", "asf", "flv", "mpg", "mpeg", "m2v", "m2ts",
    "mts", "ts", "3gp", "3g2", "ogv", "vob", "mxf",
])
AUDIO_EXTS = frozenset([
    "wav", "wave", "flac", "mp3", "ogg", "oga", "opus", "m4a", "m4b", "aac", "wma", "aif", "aiff",
    "aifc", "ape", "wv", "amr", "mka", "ac3", "mp2",
])
DEPTH_EXTS = frozenset(["npy"])  # only a depth map when a depth glob matches (default: *.npy)
# containers that may hold video or only sound: the streams decide
_PROBE_EXTS = frozenset([
    "mp4", "mov", "mkv", "webm", "ogg", "ogv", "oga", "3gp", "3g2", "asf", "wmv", "wma", "mka",
])
# fmt: on
# formats only some Pillow builds read (HEIF via the pillow-heif plugin): extension to check
_PLUGIN_EXTS = frozenset(["heic", "heif", "avif"])
_PLUGIN_KINDS = {"heif": "heic", "avif": "avif"}
_FAMILY_MODALITY = {"image": Modality.IMAGE, "video": Modality.VIDEO, "audio": Modality.AUDIO}


def classify(
    path: Path,
    classify_cfg: ClassifyConfig,
    root: Path | None = None,
    forced: Modality | None = None,
) -> Modality:
    """The modality of `path`, or MediaError (unsupported_type, not_found, not_regular_file...).

    `forced` (the CLI's `--as`) wins without reading anything. Otherwise the first bytes are
    sniffed (after an os.stat check, so FIFOs and devices are never opened); a recognised
    signature overrides the extension, an unknown one falls back to it. Still pictures then go
    to depth or thermal when a glob of `classify_cfg` matches.
    """
    if forced is not None:
        return forced
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    family, kind = _sniff_family(path, ext)
    if family == "container":
        family = _probe_container(path) or _ext_family(ext)
    if family == "npy":
        if _matches(classify_cfg.depth_globs, path, root):
            return Modality.DEPTH
        raise media_error(path, "unsupported_type", ".npy file outside the depth globs")
    if family == "image":
        needs = _PLUGIN_KINDS.get(kind or "") or (ext if kind is None else None)
        if needs in _PLUGIN_EXTS and not _pillow_reads(needs):
            detail = f"{needs.upper()} pictures need an optional Pillow plugin (pillow-heif)"
            raise media_error(path, "unsupported_type", detail)
        if _matches(classify_cfg.depth_globs, path, root):
            return Modality.DEPTH
        if _matches(classify_cfg.thermal_globs, path, root):
            return Modality.THERMAL
    if family in _FAMILY_MODALITY:
        return _FAMILY_MODALITY[family]
    raise media_error(path, "unsupported_type", f"not a media file (extension {ext or 'none'!r})")


def _pillow_reads(ext: str) -> bool:
    """Whether Pillow (with pillow-heif, when installed) has a reader for `.ext`."""
    from PIL import Image

    from .image import register_optional_formats

    register_optional_formats()
    return f".{ext}" in Image.registered_extensions()


def _ext_family(ext: str) -> str | None:
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    if ext in AUDIO_EXTS:
        return "audio"
    return "npy" if ext in DEPTH_EXTS else None


def _sniff_family(path: Path, ext: str) -> tuple[str | None, str | None]:
    """(family, sniffed kind): from the content when recognisable, else from the extension."""
    by_ext = _ext_family(ext)
    fallback = "container" if ext in _PROBE_EXTS else by_ext
    try:
        with open_media(path) as (handle, _):
            head = handle.read(HEAD_BYTES)
    except MediaError as exc:
        # a known media extension is still that medium; decode will report the real problem
        if exc.reason in ("empty_file", "unreadable", "vanished") and by_ext is not None:
            return fallback, None
        if exc.reason == "empty_file":
            raise media_error(
                path, "unsupported_type", "empty file without a media extension"
            ) from None
        raise
    kind = sniff(head)
    return (fallback, None) if kind is None else (FAMILIES[kind], kind)


def _probe_container(path: Path) -> str | None:
    """'video' if the container has a real video stream (not cover art), 'audio' if only sound."""
    import av

    try:
        with open_media(path) as (handle, _), av.open(handle, metadata_errors="ignore") as box:
            if any(not _is_cover_art(s) for s in box.streams.video):
                return "video"
            return "audio" if box.streams.audio else None
    except (MediaError, av.FFmpegError, OSError, ValueError):
        return None  # damaged: let the extension decide and the decoder report it


def _is_cover_art(stream: Any) -> bool:
    import av

    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _matches(globs: tuple[str, ...], path: Path, root: Path | None) -> bool:
    """Case-insensitive glob match on the path relative to root (also with root's own name in
    front, so indexing a folder called depth/ counts) and on the bare file name."""
    if not globs:
        return False
    candidates = {path.name.lower(), _relative(path, root).lower()}
    if root is not None and root.name:
        candidates.add(f"{root.name}/{_relative(path, root)}".lower())
    return any(_glob_regex(g).fullmatch(c) for g in globs for c in candidates)


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    parts = PurePath(path).parts
    anchor = PurePath(path).anchor
    return "/".join(p for p in parts if p != anchor)


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Glob -> regex: `**/` any folders (or none), `/**` anything below, `*` within one name."""
    p, out, i = pattern.lower(), [], 0
    while i < len(p):
        if p.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif p.startswith("/**", i) and i + 3 == len(p):
            out.append("(?:/.*)?")
            i += 3
        elif p.startswith("**", i):
            out.append(".*")
            i += 2
        elif p[i] == "*":
            out.append("[^/]*")
            i += 1
        elif p[i] == "?":
            out.append("[^/]")
            i += 1
        elif p[i] == "[" and "]" in p[i + 1 :]:
            end = p.index("]", i + 1)
            body = p[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(p[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)
