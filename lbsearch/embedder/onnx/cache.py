"""Where exported towers live, how they are named, and how they are written safely.

Layout under the cache root (the parameter, $LBSEARCH_CACHE, else the user cache folder), one
folder per export format so that a new lbsearch never runs graphs an older one wrote:

    onnx/v1/media/<weights key>-<dtype>/       model.onnx, model.onnx.data, meta.json
    onnx/v1/text/<identity>-<text config>-g<text graph>-<start id>/   model.onnx, ..., meta.json
    onnx/v1/text-optimized/<text entry>-ort<version>/   the same, as ONNX Runtime optimised it

A weights key digests what identifies a checkpoint file without reading it (path, size, mtime)
plus its config.json and the tower kind, so a changed checkpoint gets a fresh export. Text towers
are stored by content (LanguageBind froze the text tower, so most checkpoints share one): the
identity is the digest of the text weights that lbsearch.embedder.identity computes once per
checkpoint file.

Every entry is built in a temporary sibling folder and renamed into place; meta.json is written
last, so a folder that has it is complete. Concurrent exporters of one entry wait on a lock file,
and whichever renames second throws its copy away.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import LbsearchError
from ...models.checkpoint import Checkpoint
from ...models.spec import TextSpec
from ..cache import cache_dir, read_json, write_json_atomically

EXPORT_FORMAT = 1  # bump when the exported graphs change (inputs, normalisation, opset, quantising)
# The text graph's own version (text_graph.py), in its entry's name: a new one replaces the text
# exports of older ones (0.5 GB each at full size) and leaves the media exports alone.
TEXT_GRAPH = 2  # 1 (no suffix): torch.onnx's trace
MODEL_FILE = "model.onnx"
META_FILE = "meta.json"

Notify = Callable[[str], None]


class OnnxCacheError(LbsearchError):
    """The ONNX cache cannot be written or read, or an export failed."""


def cache_root(override: Path | str | None = None) -> Path:
    """The parameter, else $LBSEARCH_CACHE, else the platform's user cache folder for lbsearch."""
    return Path(override).expanduser() if override is not None else cache_dir()


@dataclass(frozen=True)
class WeightsIdentity:
    """What names a checkpoint's weights without reading them."""

    path: str
    size: int
    mtime_ns: int
    config_digest: str

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> WeightsIdentity:
        weights = checkpoint.weights.resolve()
        config = checkpoint.directory / "config.json"
        try:
            stat = weights.stat()
            config_digest = hashlib.sha256(config.read_bytes()).hexdigest()
        except OSError as exc:
            raise OnnxCacheError(
                f"{exc.filename}: cannot read it to name its ONNX export: {exc.strerror}",
                "check that the checkpoint folder is complete and readable",
            ) from exc
        return cls(str(weights), stat.st_size, stat.st_mtime_ns, config_digest)

    def key(self, kind: str) -> str:
        text = f"{kind}\0{self.path}\0{self.size}\0{self.mtime_ns}\0{self.config_digest}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


class OnnxCache:
    """One cache root's v<EXPORT_FORMAT> folder."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.base = cache_root(root) / "onnx" / f"v{EXPORT_FORMAT}"

    def media_entry(self, weights_key: str, dtype: str) -> Path:
        return self.base / "media" / f"{weights_key}-{dtype}"

    def text_entry(self, identity: str, spec: TextSpec, start_id: int) -> Path:
        # The graph follows config.json too (activation, epsilon, heads), not the weights alone,
        # and the tokenizer's start token, whose states it holds (text_graph.py).
        shape = hashlib.sha256(repr(spec).encode("utf-8")).hexdigest()[:8]
        return self.base / "text" / f"{identity}-{shape}-g{TEXT_GRAPH}-{start_id}"

    def optimized_entry(self, text_entry: Path) -> Path:
        """Where ONNX Runtime's optimised copy of a text export lives. An optimised graph holds
        the fused operators of the ONNX Runtime that wrote it: its version is in the name."""
        import onnxruntime

        version = re.sub(r"[^A-Za-z0-9.]", "_", onnxruntime.__version__)
        return self.base / "text-optimized" / f"{text_entry.name}-ort{version}"

    def prune_text(self, keep: Path) -> None:
        """Remove the text exports that `keep` replaces (the same weights and config in an older
        graph version), and their optimised copies."""
        plain = keep.name.rsplit("-g", 1)[0]
        current = f"{plain}-g{TEXT_GRAPH}-"  # this graph for another start token stays
        for entry in keep.parent.iterdir():
            name = entry.name
            if name == plain or (name.startswith(f"{plain}-g") and not name.startswith(current)):
                for copy in (self.base / "text-optimized").glob(f"{entry.name}-ort*"):
                    shutil.rmtree(copy, ignore_errors=True)
                shutil.rmtree(entry, ignore_errors=True)

    def prune_media(self, weights_path: str, keep: str) -> None:
        """Remove exports of an older version of the same weights file (its key changed)."""
        folder = self.base / "media"
        for entry in folder.iterdir() if folder.is_dir() else ():
            meta = read_meta(entry)
            if meta and meta.get("weights") == weights_path and meta.get("key") != keep:
                shutil.rmtree(entry, ignore_errors=True)


def is_complete(entry: Path) -> bool:
    return (entry / META_FILE).is_file() and (entry / MODEL_FILE).is_file()


def read_meta(entry: Path) -> dict[str, Any]:
    """What an entry's meta.json says; {} when absent or unreadable."""
    return read_json(entry / META_FILE)


def publish(entry: Path, build: Callable[[Path], dict[str, Any]]) -> bool:
    """Build `entry` in a temporary sibling and rename it into place, unless it is already there.

    `build(folder)` writes the model files into `folder` and returns the metadata to record.
    Returns whether this call built it (False: another process had, or finished while we waited).
    """
    _make_dirs(entry.parent)
    with _exclusive(entry.parent / f".{entry.name}.lock"):
        if is_complete(entry):  # another process finished it while we waited
            return False
        shutil.rmtree(entry, ignore_errors=True)  # an incomplete leftover (no meta.json)
        temp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
        try:
            meta = build(temp)
            write_json_atomically(temp / META_FILE, {**meta, "format": EXPORT_FORMAT})
            _rename_into_place(temp, entry)
        except OSError as exc:
            raise _unwritable(entry, exc) from exc
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    return True


def folder_size(entry: Path) -> int:
    return sum(p.stat().st_size for p in entry.iterdir() if p.is_file())


def _rename_into_place(temp: Path, entry: Path) -> None:
    try:
        temp.rename(entry)  # atomic; fails if a complete entry is already there
    except OSError as exc:
        if not is_complete(entry):  # not a lost race: a real failure
            raise _unwritable(entry, exc) from exc


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An advisory lock where the platform has one (POSIX); the rename alone keeps entries whole
    elsewhere, the lock only spares a second process the same export."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        handle = lock_path.open("a")
    except OSError as exc:
        raise _unwritable(lock_path, exc) from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _make_dirs(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(folder, exc) from exc


def _unwritable(path: Path, exc: OSError) -> OnnxCacheError:
    return OnnxCacheError(
        f"{path}: cannot write the ONNX cache: {exc.strerror or exc}",
        "free disk space or point $LBSEARCH_CACHE at a writable folder",
    )
