"""Measured "auto": which faithful back-end/dtype runs a tower fastest on this machine.

No CPU flag predicts it (bf16 ran at 0.57x fp32 on a Xeon with AVX512-BF16 and 1.2-1.8x on a
Zen 5 EPYC; ONNX Runtime fp32 0.88x here, up to 1.9x there), so the first time a tower runs with
"auto", every candidate that needs no export encodes one seeded batch, each is checked against
float32 on that batch (the smallest row cosine; >= 0.9999, int8 >= 0.998) and the fastest
faithful one is kept. The decision is cached in the user cache (tuning.json) per checkpoint file,
tower, machine (CPU model and flags, or GPU name), library versions and the settings that narrow
the candidates; `lbsearch models --tune` measures again with the ONNX exports made first.

This module holds the pure parts (candidates, choice, the decision file); tuned_towers.py loads
and times real towers.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import platform
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cache import cache_dir, read_json, write_json_atomically
from .options import ONNX, TORCH, EmbedderOptions

FAITHFUL_COSINE = 0.9999  # float dtypes: the same vectors for search
FAITHFUL_INT8 = 0.998  # int8 weights: measured 0.9992 on ViT-L towers
INT8_POLICIES = ("deny", "allow")
TUNING_FILE = "tuning.json"
TUNING_FORMAT = 2  # bump when what a decision means changes (2: ONNX text towers on every core)


@dataclass(frozen=True)
class Candidate:
    backend: str  # "torch" | "onnxruntime"
    dtype: str  # "float32" | "bfloat16" | "float16" | "int8"

    def __str__(self) -> str:
        return f"{self.backend}/{self.dtype}"

    @property
    def threshold(self) -> float:
        return FAITHFUL_INT8 if self.dtype == "int8" else FAITHFUL_COSINE

    @classmethod
    def parse(cls, text: str) -> Candidate:
        backend, _, dtype = text.partition("/")
        return cls(backend, dtype)


@dataclass(frozen=True)
class Machine:
    """What decides the candidates: where torch runs, and whether the CPU multiplies bf16."""

    device_type: str  # "cpu" | "cuda" | "mps"
    bf16_native: bool
    name: str  # CPU model and a digest of its flags, or the GPU's name


@dataclass(frozen=True)
class Measured:
    candidate: Candidate
    items_per_s: float
    cosine: float  # smallest row cosine to float32 on the measured batch (1.0 for float32)
    error: str = ""  # it could not load or run: never chosen

    @property
    def faithful(self) -> bool:
        return not self.error and self.cosine >= self.candidate.threshold


@dataclass(frozen=True)
class Decision:
    chosen: Candidate
    table: tuple[Measured, ...]
    seconds: float  # what measuring took (loading each candidate included)
    source: str  # "first use" | "models --tune"
    items: int  # items in the measured batch
    measured_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        rows = [{**asdict(m), "candidate": str(m.candidate)} for m in self.table]
        return {**asdict(self), "chosen": str(self.chosen), "table": rows}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        rows = tuple(
            Measured(Candidate.parse(r["candidate"]), r["items_per_s"], r["cosine"], r["error"])
            for r in data["table"]
        )
        return cls(
            Candidate.parse(data["chosen"]),
            rows,
            data["seconds"],
            data["source"],
            data["items"],
            data["measured_at"],
        )


# --------------------------------------------------------------------------- candidates


def candidates(
    options: EmbedderOptions, machine: Machine, onnx_ready: Callable[[Candidate], bool]
) -> list[Candidate]:
    """What "auto" may choose from, float32 first (the reference). A back-end or dtype the
    settings fix narrows the list; ONNX Runtime runs on the CPU only and is a candidate where
    `onnx_ready` says its export exists (or may be made); int8 only with `int8 = "allow"`."""
    out: list[Candidate] = []
    if options.backend in ("auto", TORCH):
        torch_dtypes = ["float32"]
        if machine.device_type == "cpu" and machine.bf16_native:
            torch_dtypes.append("bfloat16")
        if machine.device_type in ("cuda", "mps"):
            torch_dtypes.append("float16")
        out += [Candidate(TORCH, d) for d in torch_dtypes if options.dtype in ("auto", d)]
    if options.backend in ("auto", ONNX) and machine.device_type == "cpu":
        onnx_dtypes = ["float32"] + (["int8"] if options.int8 == "allow" else [])
        wanted = [Candidate(ONNX, d) for d in onnx_dtypes if options.dtype in ("auto", d)]
        out += [c for c in wanted if onnx_ready(c)]
    return out


def reference(listed: Sequence[Candidate]) -> Candidate | None:
    """The float32 candidate the others are compared with (torch's where both are listed)."""
    return next((c for c in listed if c.dtype == "float32"), None)


def choose(table: Sequence[Measured]) -> Candidate:
    """The fastest faithful candidate (ties: the earlier, float32 first)."""
    faithful = [m for m in table if m.faithful]
    if not faithful:
        raise ValueError("no faithful candidate")  # float32 is faithful to itself
    return max(faithful, key=lambda m: m.items_per_s).candidate


def min_cosine(vectors: np.ndarray, reference_vectors: np.ndarray) -> float:
    """The smallest cosine between matching rows (both L2-normalised, so a row dot)."""
    a = np.asarray(vectors, dtype=np.float64)
    b = np.asarray(reference_vectors, dtype=np.float64)
    if a.shape != b.shape or not np.isfinite(a).all():
        return float("-inf")
    return float((a * b).sum(axis=1).min())


# ----------------------------------------------------------------------- the machine


def cpu_name() -> str:
    """The CPU's model name and a digest of its flags (two CPUs of one name can differ)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
            fields = dict(_cpuinfo_fields(text))
            flags = fields.get("flags", fields.get("Features", ""))
            digest = hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:12]
            # platform.processor() runs `uname -p` in a child process: ~10 ms of a cold query
            model = fields.get("model name") or platform.processor() or platform.machine()
            return f"{model} (flags {digest})"
    return f"{platform.machine()} {platform.processor()}".strip()


def cpu_bf16_native() -> bool:
    """AVX512-BF16 or AMX in /proc/cpuinfo (as lbsearch.models.runtime reads it, without torch):
    elsewhere bf16 is emulated and never worth measuring."""
    if sys.platform != "linux":
        return False
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    flags = set(dict(_cpuinfo_fields(text)).get("flags", "").split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _cpuinfo_fields(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor is enough
        key, _, value = line.partition(":")
        pairs.append((key.strip(), value.strip()))
    return pairs


@functools.cache
def library_versions() -> tuple[tuple[str, str], ...]:
    """lbsearch's and the back-ends' versions, as installed (nothing imported)."""
    from .. import __version__

    found = [("lbsearch", __version__)]
    for name in ("torch", "onnxruntime"):
        version = installed_version(name)
        if version is not None:
            found.append((name, version))
    return tuple(found)


def installed_version(name: str) -> str | None:
    """The version of the installed distribution `name`, None when it is not installed.

    Read from the name of its `NAME-VERSION.dist-info` folder beside the package, where pip
    puts it: importing `importlib.metadata` and parsing the METADATA file took ~35 ms of every
    cold query (2 cores). A package installed any other way falls back to `importlib.metadata`.
    """
    import importlib.util

    spec = importlib.util.find_spec(name)  # finds, never imports, a top-level package
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or ():
        found = sorted(Path(folder).parent.glob(f"{name}-*.dist-info"))
        if len(found) == 1:
            return found[0].name[len(name) + 1 : -len(".dist-info")]
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------------- the decision file

_lock = threading.Lock()


def decision_key(tower: str, weights: str, machine: Machine, options: EmbedderOptions) -> str:
    """The cache key: the tower of one checkpoint file on one machine, with what narrows it."""
    narrowing = {
        "backend": options.backend,
        "dtype": options.dtype,
        "device": options.device,
        "threads": options.threads,
        "batch_size": options.batch_size,
        "int8": options.int8,
    }
    parts = {
        "format": TUNING_FORMAT,
        "tower": tower,
        "weights": weights,
        "machine": [machine.device_type, machine.name],
        "versions": library_versions(),
        "settings": narrowing,
    }
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def tuning_path() -> Path:
    return cache_dir() / TUNING_FILE


def read_decision(key: str) -> Decision | None:
    """The cached decision, or None (never measured, or a damaged entry: measured again)."""
    entry = read_json(tuning_path()).get(key)
    if not isinstance(entry, dict):
        return None
    try:
        return Decision.from_json(entry)
    except (KeyError, TypeError, ValueError):
        return None


def write_decision(key: str, decision: Decision, about: dict[str, str]) -> None:
    """Record `decision` (with `about`: readable names for the key's parts); a read-only cache
    only costs measuring again next time."""
    with _lock:
        known = read_json(tuning_path())  # another process may have added entries meanwhile
        known[key] = {**decision.to_json(), **about}
        with contextlib.suppress(OSError):
            write_json_atomically(tuning_path(), known)
