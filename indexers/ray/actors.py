"""Encoder actors: one embedder (one checkpoint load) per actor, batches of segment rows in,
the same rows with vectors out (pixels dropped, so only vectors travel back to the driver)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lbsearch.types import Modality, Segment

from .options import EmbedderFactory, RayRunError
from .rows import COUNT, END, PATH, PIXELS, REASON, START, VECTOR


class EncoderActor:
    def __init__(
        self,
        factory: EmbedderFactory,
        modality: str,
        threads: int,
        encoding: str,
        take_turns: bool = False,
    ) -> None:
        import torch

        if threads > 0:  # Ray's default is one thread per CPU reserved (a fraction here)
            torch.set_num_threads(threads)
        self.modality = Modality(modality)
        self.embedder = factory()
        check_encoding(self.embedder.encoding(self.modality), encoding, self.modality)
        self.take_turns = take_turns

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        import torch

        rows = len(batch[COUNT])
        todo = [i for i in range(rows) if batch[COUNT][i] > 0 and not batch[REASON][i]]
        vectors: list[np.ndarray] = [_NONE] * rows
        if todo:
            segments = [
                Segment(
                    str(batch[PATH][i]),
                    self.modality,
                    float(batch[START][i]),
                    float(batch[END][i]),
                    torch.from_numpy(np.ascontiguousarray(batch[PIXELS][i], dtype=np.float32)),
                )
                for i in todo
            ]
            with machine_turn() if self.take_turns else contextlib.nullcontext():
                embedded = np.asarray(self.embedder.embed_segments(self.modality, segments))
            for i, vector in zip(todo, embedded, strict=True):
                vectors[i] = vector.astype(np.float32, copy=False)
        out = {name: column for name, column in batch.items() if name not in (PIXELS, PATH)}
        out[VECTOR] = _ragged(vectors)
        return out


@contextlib.contextmanager
def machine_turn() -> Iterator[None]:
    """Hold this machine's CPU encoder turn for one batch.

    Every CPU actor runs as many threads as the machine has cores (one modality is often all
    there is to encode), so two actors encoding at once, say video and audio, would each get
    half the cores and lose more to contention; the local pipeline encodes one batch at a time
    for the same reason. The turn is an advisory lock on a file in this machine's temp folder,
    so it spans the actors of every pool (and of every run) here."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the actors share the cores as the OS decides
        yield
        return
    path = Path(tempfile.gettempdir()) / f"lbsearch-cpu-encoder-{os.getuid()}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def actor_encodings(factory: EmbedderFactory, modalities: list[str]) -> dict[str, str]:
    """What an actor's embedder resolves for each modality (a task placed like an actor)."""
    embedder = factory()
    return {m: str(embedder.encoding(Modality(m))) for m in modalities}


def check_encoding(actual: object, recorded: str, modality: Modality) -> None:
    """The library records the driver's encoding: vectors from another dtype must not join it
    (on a GPU node "auto" gives float16, on a CPU-only driver float32)."""
    if str(actual) != recorded:
        raise RayRunError(
            f"the {modality.value} encoder actors run {actual}, but this machine resolves the "
            f"settings to {recorded} (the library records what this machine resolves)",
            f"give the dtype explicitly so every machine agrees, e.g. --dtype "
            f"{str(actual).split('/')[-1]} (and --backend/--device if they differ)",
        )


_NONE = np.zeros(0, dtype=np.float32)


def _ragged(vectors: list[np.ndarray]) -> np.ndarray:
    """One vector per row (empty for status rows) as an object array Ray keeps row by row."""
    column = np.empty(len(vectors), dtype=object)
    for i, vector in enumerate(vectors):  # one by one: equal lengths must not broadcast
        column[i] = vector
    return column
