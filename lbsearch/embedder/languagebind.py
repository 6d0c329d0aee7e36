"""The one Embedder: LanguageBind checkpoints from the settings, per-modality overrides, and a
back-end per tower kind (torch or ONNX Runtime).

Nothing loads before it is needed: `model_id` reads the settings only, `media_spec` and
`encoding` read config.json, a media tower loads on its first segments and a text tower on its
first texts. Text towers with identical weights (LanguageBind froze the text tower in training)
are loaded and run once, and recently encoded texts are answered from memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..config import Config
from ..models.checkpoint import Checkpoint, model_id_for, open_checkpoint
from ..types import MediaSpec, Modality, Segment
from .identity import text_tower_identity
from .options import ONNX, EmbedderOptions
from .protocol import Computed, Encoding, Joined, VectorsInFlight
from .text_batches import TextBatches

if TYPE_CHECKING:
    from .tuner import Decision

Notify = Callable[[str], None]
_TEXT_CACHE_SIZE = 4096


class MediaTower(Protocol):
    dim: int
    batch_size: int
    encoding: Encoding

    def encode(self, segments: Sequence[Segment]) -> np.ndarray: ...

    def submit(self, segments: Sequence[Segment]) -> VectorsInFlight: ...


class TextTower(Protocol):
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


class LanguageBindEmbedder:
    """`models`: a checkpoint per modality (repo id or directory) that replaces the configured
    one, e.g. the models a library was indexed with or `--model`."""

    def __init__(
        self,
        config: Config,
        options: EmbedderOptions,
        models: Mapping[Modality, str] | None = None,
        notify: Notify | None = None,
    ) -> None:
        self.config = config
        self.options = options
        self.models = dict(models or {})
        self.notify = notify
        self._checkpoints: dict[Modality, Checkpoint] = {}
        self._identities: dict[Modality, str] = {}
        self._media: dict[Modality, MediaTower] = {}
        self._text: dict[str, TextTower] = {}  # by text-tower identity
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._load_lock = threading.RLock()
        self._text_lock = threading.Lock()  # guards the text vectors cache
        # one pass through a text tower at a time (no oversubscribed cores), shared by the
        # callers waiting for it (a service's concurrent searches)
        self._text_batches = TextBatches()
        self.texts_encoded = 0  # texts that went through a tower (the rest came from memory)
        self.decisions: dict[Modality, Decision | None] = {}  # what "auto" measured or cached

    # ------------------------------------------------------------------ what, no weights

    def reference(self, modality: Modality) -> str:
        """The checkpoint as named in the settings or the overrides."""
        return self.models.get(modality) or self.config.models.for_modality(modality)

    def model_id(self, modality: Modality) -> str:
        return model_id_for(self.reference(modality))

    def checkpoint(self, modality: Modality) -> Checkpoint:
        """The checkpoint's folder and config.json (downloaded from the hub on first use)."""
        with self._load_lock:
            if modality not in self._checkpoints:
                self._checkpoints[modality] = open_checkpoint(self.reference(modality))
            return self._checkpoints[modality]

    def media_spec(self, modality: Modality) -> MediaSpec:
        return self.checkpoint(modality).spec.media_spec()

    def dim(self, modality: Modality) -> int:
        return self.checkpoint(modality).spec.projection_dim

    def encoding(self, modality: Modality) -> Encoding:
        """What the media tower runs (`str()`: "torch/float32"): exact once it has loaded; before,
        the cached "auto" decision, else what options.py's rule predicts (the first load of an
        "auto" tower measures and may choose another)."""
        with self._load_lock:
            if modality in self._media:
                return self._media[modality].encoding
        choice = self._cached_media_choice(modality)
        if choice is not None:
            return choice
        if self.options.media_backend() == ONNX:
            return Encoding(ONNX, "int8" if self.options.is_int8 else "float32")
        from .torch_towers import torch_encoding

        return torch_encoding(self.options)

    def _cached_media_choice(self, modality: Modality) -> Encoding | None:
        """The "auto" decision cached for the modality's tower; None when nothing is cached or
        the checkpoint is not on this machine (naming an encoding never downloads one)."""
        from ..errors import LbsearchError
        from ..models.hub import available_without_download

        if not self.options.tunes() or not available_without_download(self.reference(modality)):
            return None
        from .tuned_towers import cached_choice, encoding_of

        try:
            choice = cached_choice(self.checkpoint(modality), modality.value, self.options)
        except LbsearchError:  # an incomplete checkpoint: its load will say what is wrong
            return None
        return encoding_of(choice) if choice is not None else None

    # ------------------------------------------------------------------------- vectors

    def embed_segments(self, modality: Modality, segments: Sequence[Segment]) -> np.ndarray:
        """Batch by batch, each submitted before the previous one is waited for: the device
        stays busy, and at most two batches' inputs are held however many segments come (a
        whole long video from `embed`)."""
        if not segments:
            return np.zeros((0, self.dim(modality)), dtype=np.float32)
        tower = self.media_tower(modality)
        step = max(1, tower.batch_size)
        done: list[np.ndarray] = []
        previous: VectorsInFlight | None = None
        for start in range(0, len(segments), step):
            submitted = tower.submit(segments[start : start + step])
            if previous is not None:
                done.append(previous.result())
            previous = submitted
        assert previous is not None
        return np.concatenate([*done, previous.result()]).astype(np.float32, copy=False)

    def submit_segments(self, modality: Modality, segments: Sequence[Segment]) -> VectorsInFlight:
        """The tower's batches queued (on CUDA) or computed (elsewhere), in order; all of them
        at once, so the caller sends a batch's worth (the indexer does)."""
        if not segments:
            return Computed(np.zeros((0, self.dim(modality)), dtype=np.float32))
        tower = self.media_tower(modality)
        step = max(1, tower.batch_size)
        return Joined([tower.submit(segments[i : i + step]) for i in range(0, len(segments), step)])

    def embed_texts(self, modality: Modality, texts: Sequence[str]) -> np.ndarray:
        identity = self._text_identity(modality)
        if not texts:
            return np.zeros((0, self.dim(modality)), dtype=np.float32)
        # The answer is assembled from this call's own vectors: a batch larger than the cache
        # would otherwise evict entries it still needs.
        found: dict[str, np.ndarray] = {}
        missing = self._from_cache(identity, texts, found)
        if missing:
            tower = self._text_tower(modality, identity)
            # another thread may have embedded them while the tower loaded (a cold query's
            # early text): a second pass would cost as much as the first
            missing = self._from_cache(identity, missing, found)
        if missing:
            encoded = self._text_batches.run(identity, missing, tower.encode)
            with self._text_lock:
                self.texts_encoded += len(missing)
                for text, vector in encoded.items():
                    found[text] = vector
                    self._remember((identity, text), vector)
        return np.stack([found[t] for t in texts])

    def _from_cache(
        self, identity: str, texts: Sequence[str], found: dict[str, np.ndarray]
    ) -> list[str]:
        """Put the cached vectors of `texts` into `found`; the texts not cached."""
        with self._text_lock:
            for text in dict.fromkeys(texts):
                cached = self._vectors.get((identity, text))
                if cached is not None:
                    self._vectors.move_to_end((identity, text))  # recently used: kept longer
                    found[text] = cached
        return [t for t in dict.fromkeys(texts) if t not in found]

    # -------------------------------------------------------------------------- towers

    def _text_identity(self, modality: Modality) -> str:
        """The digest of the modality's text tower, read from the user cache once per embedder."""
        with self._load_lock:
            if modality not in self._identities:
                self._identities[modality] = text_tower_identity(self.checkpoint(modality))
            return self._identities[modality]

    def media_tower(self, modality: Modality) -> MediaTower:
        """The modality's tower, loaded on first use and kept."""
        with self._load_lock:
            if modality not in self._media:
                self._media[modality] = self._load_media(modality)
            return self._media[modality]

    def _load_media(self, modality: Modality) -> MediaTower:
        checkpoint = self.checkpoint(modality)
        if self.options.tunes():  # "auto": the cached decision, or measured now
            from .tuned_towers import load_media, tuned_media_tower

            tuned = tuned_media_tower(checkpoint, modality, self.options, self.notify)
            self.decisions[modality] = tuned.decision
            if tuned.tower is not None:
                return tuned.tower
            if tuned.chosen is not None:
                return load_media(checkpoint, modality, self.options, tuned.chosen, self.notify)
        if self.options.media_backend() == ONNX:
            from .onnx_towers import OnnxMediaTowerAdapter

            return OnnxMediaTowerAdapter(checkpoint, modality, self.options, self.notify)
        from .torch_towers import TorchMediaTower

        return TorchMediaTower(checkpoint, modality, self.options)

    def _text_tower(self, modality: Modality, identity: str) -> TextTower:
        with self._load_lock:
            if identity not in self._text:
                checkpoint = self.checkpoint(modality)
                tuned = self._tuned_text(checkpoint)
                if tuned is not None:
                    self._text[identity] = tuned
                elif self.options.text_backend() == ONNX:
                    from .onnx_towers import OnnxTextTowerAdapter

                    self._text[identity] = OnnxTextTowerAdapter(
                        checkpoint, self.options, self.notify
                    )
                else:
                    from .torch_towers import TorchTextTower

                    self._text[identity] = TorchTextTower(checkpoint, self.options)
            return self._text[identity]

    def _tuned_text(self, checkpoint: Checkpoint) -> TextTower | None:
        """The text tower `lbsearch models --tune` chose, if it measured this checkpoint here."""
        if not self.options.tunes():
            return None
        from .tuned_towers import TEXT, cached_choice, load_text

        choice = cached_choice(checkpoint, TEXT, self.options)
        if choice is None:
            return None
        return load_text(checkpoint, self.options, choice, self.notify)

    def for_models(self, models: Mapping[Modality, str]) -> LanguageBindEmbedder:
        """An embedder on other checkpoints that shares this one's text towers and text vectors
        (they are keyed by the towers' weights, not by checkpoint): a query process can start
        encoding its text before the library says which checkpoints it was indexed with."""
        sibling = LanguageBindEmbedder(self.config, self.options, models, self.notify)
        sibling._text, sibling._vectors = self._text, self._vectors
        sibling._text_lock, sibling._load_lock = self._text_lock, self._load_lock
        sibling._text_batches = self._text_batches
        return sibling

    def _remember(self, key: tuple[str, str], vector: np.ndarray) -> None:
        self._vectors[key] = vector
        if len(self._vectors) > _TEXT_CACHE_SIZE:
            self._vectors.popitem(last=False)


def open_embedder(
    config: Config,
    *,
    models: Mapping[Modality, str] | None = None,
    backend: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    notify: Notify | None = None,
    quick_start: bool = False,
) -> LanguageBindEmbedder:
    """The embedder for the settings, with flags (when given) over [runtime]; `quick_start` for
    a one-shot process (see EmbedderOptions)."""
    options = EmbedderOptions.from_runtime(
        config.runtime, backend=backend, device=device, dtype=dtype, quick_start=quick_start
    )
    return LanguageBindEmbedder(config, options, models, notify)


def override_for(model: str | None) -> dict[Modality, str]:
    """`--model X`: X replaces the configured checkpoint of X's own modality (its config.json
    says which)."""
    if not model:
        return {}
    return {open_checkpoint(model).spec.modality: model}
