"""Concurrent text queries share one pass through the text tower.

A web service answers many searches at once, and each needs its text embedded. Run one at a time
(so that two towers never fight over the same cores), the text tower becomes the queue every
search waits in; yet one pass over eight short texts costs little more than a pass over one (the
tower's matrices are small for a query of a few tokens, and the cores are used better). So a
caller that finds the tower busy leaves its texts here; whoever runs the tower next takes every
text waiting for the same tower (up to `max_texts`) in one batch, and hands each caller its own
vectors. A lone caller runs at once, exactly as before: nothing waits for company.

Positions after a text's end-of-text token never influence its vector (CLIP's causal mask, see
lbsearch.models.tokenizer), so a text's vector does not depend on the texts batched with it,
up to floating-point rounding of the larger matrix products.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

Encode = Callable[[list[str]], np.ndarray]


@dataclass(eq=False)
class _Request:
    tower: str  # the text tower's identity: only requests for the same tower share a pass
    texts: list[str]
    encode: Encode
    vectors: dict[str, np.ndarray] | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class TextBatches:
    """Thread-safe. `run` blocks until the caller's texts are embedded, by its own pass or by a
    pass another caller ran for it; a tower's error reaches every caller of that pass."""

    def __init__(self, max_texts: int = 64) -> None:
        self.max_texts = max(1, max_texts)
        self.passes = 0  # tower passes run (tests and benchmarks read it)
        self._changed = threading.Condition()
        self._waiting: list[_Request] = []
        self._busy = False

    def run(self, tower: str, texts: Sequence[str], encode: Encode) -> dict[str, np.ndarray]:
        """The vector of each distinct text in `texts` (embedded by `encode`, a batch at a time)."""
        request = _Request(tower, list(dict.fromkeys(texts)), encode)
        with self._changed:
            self._waiting.append(request)
            while not request.done:
                if self._busy:
                    self._changed.wait()
                    continue
                batch = self._take()
                self._busy = True
                self._changed.release()
                vectors: dict[str, np.ndarray] = {}
                try:
                    vectors = _run_pass(batch)
                finally:
                    self._changed.acquire()
                    self._busy = False
                    self.passes += 1
                    self._serve_waiting(batch[0].tower, vectors)
                    self._changed.notify_all()
        if request.error is not None:
            raise request.error
        assert request.vectors is not None
        return request.vectors

    def _serve_waiting(self, tower: str, vectors: dict[str, np.ndarray]) -> None:
        """Callers that arrived during the pass asking only for texts it embedded get them from
        it: a cold query's early text and the search's own ask for the same text, and the
        second used to wait for the first pass and then run another one."""
        served = [
            r for r in self._waiting if r.tower == tower and all(t in vectors for t in r.texts)
        ]
        for request in served:
            request.vectors = {t: vectors[t] for t in request.texts}
            request.done = True
        self._waiting = [r for r in self._waiting if not r.done]

    def _take(self) -> list[_Request]:
        """The oldest request, and those after it for the same tower while they fit: first come,
        first served (a request for another tower keeps its place at the head)."""
        head = self._waiting[0]
        batch, count = [head], len(head.texts)
        for request in self._waiting[1:]:
            if request.tower == head.tower and count + len(request.texts) <= self.max_texts:
                batch.append(request)
                count += len(request.texts)
        self._waiting = [r for r in self._waiting if r not in batch]
        return batch


def _run_pass(batch: list[_Request]) -> dict[str, np.ndarray]:
    """Embed the batch's texts and hand each request its own; the vectors (none on an error)."""
    texts = list(dict.fromkeys(t for request in batch for t in request.texts))
    try:
        vectors = dict(zip(texts, batch[0].encode(texts), strict=True))
    except BaseException as error:  # every caller of the pass hears of it
        for request in batch:
            request.error, request.done = error, True
        if not isinstance(error, Exception):  # an interrupt also stops the thread that ran it
            raise
        return {}
    for request in batch:
        request.vectors = {t: vectors[t] for t in request.texts}
        request.done = True
    return vectors
