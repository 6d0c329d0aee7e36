"""Towers for "auto": the cached decision's, or the fastest faithful one measured now.

A media tower's first use measures (tuner.py says how); a text tower's first use is usually a
query, where loading torch to measure would cost more than the query itself, so text towers take
a decision only from `lbsearch models --tune` and otherwise keep the rule of options.py.
Measuring keeps the winner loaded and hands it to the embedder: nothing is loaded twice.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..models.checkpoint import Checkpoint
from ..types import Modality, Segment
from .options import ONNX, EmbedderOptions
from .protocol import Encoding
from .tuner import (
    Candidate,
    Decision,
    Machine,
    Measured,
    candidates,
    choose,
    cpu_bf16_native,
    cpu_name,
    decision_key,
    min_cosine,
    read_decision,
    reference,
    write_decision,
)

Notify = Callable[[str], None]
TEXT = "text"
SAMPLE_TEXTS = tuple(
    f"a photo of {thing} at {place}"
    for thing in ("a dog", "two children", "a red car", "an old bridge")
    for place in ("the beach at sunset", "night in the rain", "a busy market", "home")
)


class Tower(Protocol):
    def encode(self, batch: Any) -> np.ndarray: ...


Timer = Callable[[Tower, Sequence[Any]], tuple[np.ndarray, float]]


MIN_TIMED_S = 1.0  # a batch shorter than this is timed again (best of up to MAX_TIMED_RUNS)
MAX_TIMED_RUNS = 5
CPU_TIMED_ITEMS = 2  # media items per candidate on a CPU (media_batch says why)


def time_batch(
    tower: Tower, batch: Sequence[Any], clock: Callable[[], float] = time.perf_counter
) -> tuple[np.ndarray, float]:
    """One item first (first-call allocations, kernel selection), then the batch, timed: the
    best of as many runs as fit in MIN_TIMED_S (at least one, at most MAX_TIMED_RUNS).

    One run of a short batch is at the mercy of a single stall: a text tower's batch of 16
    takes ~0.2 s on 2 cores, and one timed run once made ONNX Runtime look 0.64x torch where
    it was 1.3x. A ViT-L media batch on a CPU takes seconds and still runs once, so measuring
    at first use costs no more."""
    tower.encode(batch[:1])
    best, spent, runs = float("inf"), 0.0, 0
    while runs < MAX_TIMED_RUNS and (runs == 0 or spent < MIN_TIMED_S):
        start = clock()
        vectors = tower.encode(batch)
        took = clock() - start
        best, spent, runs = min(best, took), spent + took, runs + 1
    return np.asarray(vectors, dtype=np.float32), best


@dataclass
class Tuned:
    """A decision and, when it was measured just now, the winner's loaded tower."""

    decision: Decision | None  # None: one candidate or none, nothing measured
    chosen: Candidate | None  # None: no candidate fits the settings; options.py's rule decides
    tower: Any = None


def detect_machine(options: EmbedderOptions) -> Machine:
    """Where torch would run. Without an accelerator this reads /proc only (a cold query must
    not import torch to look up a decision); with one, torch says which device it is."""
    if options.backend == ONNX or not options._accelerator():
        return Machine("cpu", cpu_bf16_native(), cpu_name())
    import torch

    from ..models.runtime import resolve_device

    device = resolve_device(options.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        name = f"Apple {platform.machine()} (mps)"
    else:
        name = cpu_name()
    return Machine(device.type, cpu_bf16_native(), name)


def tower_key(checkpoint: Checkpoint, tower: str, machine: Machine, options: Any) -> str:
    """Media towers by checkpoint file; text towers by their weights' digest (the released
    checkpoints share one text tower: measured once, for all of them)."""
    if tower == TEXT:
        from .identity import text_tower_identity

        return decision_key(tower, text_tower_identity(checkpoint), machine, options)
    from .onnx.cache import WeightsIdentity

    weights = WeightsIdentity.of(checkpoint).key(tower)
    return decision_key(tower, weights, machine, options)


def cached_choice(checkpoint: Checkpoint, tower: str, options: EmbedderOptions) -> Candidate | None:
    """The decision cached for this tower (no weights read, no torch on a CPU-only machine)."""
    decision = read_decision(tower_key(checkpoint, tower, detect_machine(options), options))
    return decision.chosen if decision is not None else None


def measure(
    listed: Sequence[Candidate],
    load: Callable[[Candidate], Tower],
    batch: Sequence[Any],
    timer: Timer | None = None,
) -> tuple[tuple[Measured, ...], Any]:
    """Time every candidate on `batch`, reference first; returns the table and the loaded tower
    of the fastest faithful one (the others are dropped as soon as they lose)."""
    timer = timer or time_batch  # looked up now: tests replace it
    ref = reference(listed)
    ordered = [ref, *(c for c in listed if c != ref)] if ref is not None else list(listed)
    table: list[Measured] = []
    expected: np.ndarray | None = None
    best: tuple[Measured, Any] | None = None
    for candidate in ordered:
        try:
            tower = load(candidate)
            vectors, seconds = timer(tower, batch)
        except Exception as exc:  # a dtype a kernel lacks: recorded, never chosen
            if candidate == ref:
                raise  # nothing to compare the others with
            table.append(Measured(candidate, 0.0, float("-inf"), f"{type(exc).__name__}: {exc}"))
            continue
        if expected is None:
            expected = vectors
        cosine = 1.0 if candidate == ref else min_cosine(vectors, expected)
        row = Measured(candidate, len(batch) / max(seconds, 1e-9), cosine)
        table.append(row)
        if row.faithful and (best is None or row.items_per_s > best[0].items_per_s):
            best = (row, tower)
        del tower
    chosen = choose(table)
    return tuple(table), best[1] if best is not None and best[0].candidate == chosen else None


def tune(
    listed: Sequence[Candidate],
    load: Callable[[Candidate], Tower],
    batch: Sequence[Any],
    source: str,
    timer: Timer | None = None,
) -> Tuned:
    start = time.perf_counter()
    table, tower = measure(listed, load, batch, timer)
    decision = Decision(choose(table), table, time.perf_counter() - start, source, len(batch))
    return Tuned(decision, decision.chosen, tower)


# ------------------------------------------------------------------------- media towers


def media_candidates(
    checkpoint: Checkpoint, modality: Modality, options: EmbedderOptions, export: bool
) -> tuple[Machine, list[Candidate]]:
    machine = detect_machine(options)

    def ready(candidate: Candidate) -> bool:
        if export or (options.backend == ONNX and candidate.dtype == "float32"):
            return True  # asked for: made now if missing
        from .onnx.cache import OnnxCache, WeightsIdentity, is_complete

        key = WeightsIdentity.of(checkpoint).key(modality.value)
        return is_complete(OnnxCache().media_entry(key, candidate.dtype))

    return machine, candidates(options, machine, ready)


def load_media(
    checkpoint: Checkpoint,
    modality: Modality,
    options: EmbedderOptions,
    candidate: Candidate,
    notify: Notify | None,
) -> Any:
    fixed = options.with_overrides(backend=candidate.backend, dtype=candidate.dtype)
    if candidate.backend == ONNX:
        from .onnx_towers import OnnxMediaTowerAdapter

        return OnnxMediaTowerAdapter(checkpoint, modality, fixed, notify)
    from .torch_towers import TorchMediaTower

    return TorchMediaTower(checkpoint, modality, fixed)


def media_batch(
    checkpoint: Checkpoint, modality: Modality, options: EmbedderOptions, machine: Machine
) -> list[Segment]:
    """One batch of seeded noise in the tower's input shape (speed does not depend on values,
    and the cosine check needs the same inputs for every candidate).

    On a CPU the batch holds at most CPU_TIMED_ITEMS: an item is 257 tokens (8 x 257 for a
    video), so per-item speed barely changes with the batch size, while measuring costs
    (warm-up + batch) x candidates. At the default 8 on a CPU, with int8 allowed, that was ~9%
    of a 1,000-image first run (the issue allows 5%); at 2 it is ~3%. A GPU gets the whole
    batch: its speed does depend on it, and its measuring is short anyway."""
    import torch

    size = options.batch_size_for(machine.device_type)
    if machine.device_type == "cpu":
        size = min(size, CPU_TIMED_ITEMS)
    shape = checkpoint.spec.input_shape
    pixels = torch.from_numpy(np.random.default_rng(0).standard_normal((size, *shape), "float32"))
    return [Segment("tuning", modality, 0.0, 0.0, p) for p in pixels]


def tuned_media_tower(
    checkpoint: Checkpoint,
    modality: Modality,
    options: EmbedderOptions,
    notify: Notify | None = None,
    *,
    measure_again: bool = False,
    timer: Timer | None = None,
) -> Tuned:
    """The media tower "auto" runs: the cached decision's, or measured now (and cached).

    `measure_again` (models --tune): every candidate, ONNX exports made first."""
    machine, listed = media_candidates(checkpoint, modality, options, export=measure_again)
    key = tower_key(checkpoint, modality.value, machine, options)
    cached = None if measure_again else read_decision(key)
    if cached is not None:
        return Tuned(cached, cached.chosen, None)
    if len(listed) < 2 or reference(listed) is None:
        return Tuned(None, listed[0] if listed else None)
    once = "" if measure_again else ", once on this machine"
    _say(notify, f"Measuring {_names(listed)} for the {modality.value} tower{once}")

    def load(candidate: Candidate) -> Any:
        return load_media(checkpoint, modality, options, candidate, notify)

    batch = media_batch(checkpoint, modality, options, machine)
    source = "models --tune" if measure_again else "first use"
    tuned = tune(listed, load, batch, source, timer)
    assert tuned.decision is not None
    write_decision(key, tuned.decision, _about(checkpoint, modality.value, machine))
    _say(notify, f"auto: {describe(tuned.decision)}")
    return tuned


# -------------------------------------------------------------------------- text towers


def tuned_text_tower(
    checkpoint: Checkpoint,
    options: EmbedderOptions,
    notify: Notify | None = None,
    timer: Timer | None = None,
) -> Tuned:
    """`models --tune` for a checkpoint's text tower: every candidate (the ONNX export made if
    missing); text towers run float32 on ONNX Runtime, never int8."""
    machine = detect_machine(options)
    listed = [c for c in candidates(options, machine, lambda c: True) if c.dtype != "int8"]
    key = tower_key(checkpoint, TEXT, machine, options)
    if len(listed) < 2 or reference(listed) is None:
        return Tuned(None, listed[0] if listed else None)

    def load(candidate: Candidate) -> Any:
        return _ListInput(load_text(checkpoint, options, candidate, notify))

    tuned = tune(listed, load, list(SAMPLE_TEXTS), "models --tune", timer)
    assert tuned.decision is not None
    write_decision(key, tuned.decision, _about(checkpoint, TEXT, machine))
    return tuned


def load_text(
    checkpoint: Checkpoint, options: EmbedderOptions, candidate: Candidate, notify: Notify | None
) -> Any:
    fixed = options.with_overrides(backend=candidate.backend, dtype=candidate.dtype)
    if candidate.backend == ONNX:
        from .onnx_towers import OnnxTextTowerAdapter

        return OnnxTextTowerAdapter(checkpoint, fixed, notify)
    from .torch_towers import TorchTextTower

    return TorchTextTower(checkpoint, fixed)


@dataclass
class _ListInput:
    """Text towers take a list; the timer slices tuples and lists alike."""

    tower: Any

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.tower.encode(list(texts)))


# ------------------------------------------------------------------------------ words


def encoding_of(candidate: Candidate) -> Encoding:
    return Encoding(candidate.backend, candidate.dtype)


def describe(decision: Decision) -> str:
    best = next(m for m in decision.table if m.candidate == decision.chosen)
    return (
        f"{decision.chosen} ({best.items_per_s:.2f} items/s; measured "
        f"{_names([m.candidate for m in decision.table])} in {decision.seconds:.1f} s)"
    )


def _names(listed: Sequence[Candidate]) -> str:
    return ", ".join(str(c) for c in listed)


def _about(checkpoint: Checkpoint, tower: str, machine: Machine) -> dict[str, str]:
    return {
        "model_id": checkpoint.model_id,
        "tower": tower,
        "machine": f"{machine.device_type}: {machine.name}",
    }


def _say(notify: Notify | None, message: str) -> None:
    if notify is not None:
        notify(message)


# -------------------------------------------------------------------- models --tune


@dataclass(frozen=True)
class TowerTuning:
    """What `models --tune` measured for one tower ("image", ..., or "text")."""

    tower: str
    model_id: str
    tuned: Tuned


def tune_towers(
    checkpoints: Sequence[tuple[Modality, Checkpoint]],
    options: EmbedderOptions,
    notify: Notify | None = None,
    timer: Timer | None = None,
) -> list[TowerTuning]:
    """Measure every candidate of each media tower, then of each distinct text tower among the
    checkpoints, exporting ONNX towers first where missing; the decisions replace the cached
    ones (what "auto" runs from now on)."""
    from .identity import text_tower_identity

    done: list[TowerTuning] = []
    for modality, checkpoint in checkpoints:
        tuned = tuned_media_tower(
            checkpoint, modality, options, notify, measure_again=True, timer=timer
        )
        done.append(TowerTuning(modality.value, checkpoint.model_id, _without_tower(tuned)))
    seen: set[str] = set()
    for _, checkpoint in checkpoints:
        identity = text_tower_identity(checkpoint)
        if identity not in seen:
            seen.add(identity)
            tuned = tuned_text_tower(checkpoint, options, notify, timer)
            done.append(TowerTuning(TEXT, checkpoint.model_id, _without_tower(tuned)))
    return done


def _without_tower(tuned: Tuned) -> Tuned:
    return Tuned(tuned.decision, tuned.chosen)  # a full-size tower is 0.3-1.2 GB: let it go
