"""Which FAISS index a modality gets: its kind and sizes from the collection's size and the
settings, when a grown or shrunk collection calls for another, and the lists a query scans.

Numbers only: nothing here imports faiss.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from ..config import IndexConfig
from ..errors import ConfigError

_GPU_PQ_BYTES = (96, 64, 56, 48, 40, 32, 28, 24, 20, 16, 12, 8, 4)
_PQ_MIN_TRAIN = 10_000  # 256 centroids per sub-quantizer need ~39 x 256 training points
# IVF lists: at least 512 (bench/vectors.py --sweep, clustered 768-d vectors with the bias column:
# IVF256 found 0.82-0.88 of the exact top 10 at 12k-30k vectors scanning 32 lists, and 0.92
# scanning half of them; IVF512 with 32 lists 0.98-0.99), and at least 16 training points per
# list (k-means asks 39 and warns below; IVF512 trained on 12k vectors measured 0.984)
_MIN_LISTS = 512
MIN_POINTS = 16


class IndexKind(StrEnum):
    FLAT = "flat"
    IVF = "ivf"
    IVF_PQ = "ivf_pq"


@dataclass(frozen=True)
class IndexPlan:
    """Which index to build: kind, IVF list count and PQ bytes per vector."""

    kind: IndexKind
    nlist: int = 0
    pq_m: int = 0

    @property
    def factory(self) -> str:
        if self.kind is IndexKind.FLAT:
            return "IDMap2,Flat"
        coder = "Flat" if self.kind is IndexKind.IVF else f"PQ{self.pq_m}np"  # np: no polysemous
        return f"IVF{self.nlist},{coder}"

    def training_size(self, count: int) -> int:
        if self.kind is IndexKind.FLAT:
            return 0
        wanted = 40 * self.nlist
        if self.kind is IndexKind.IVF_PQ:
            wanted = max(wanted, 4 * _PQ_MIN_TRAIN)
        return min(count, wanted)


def check_config(config: IndexConfig) -> None:
    if not re.fullmatch(r"auto|cpu|(gpu|cuda)(:\d+)?", config.device):
        raise ConfigError(
            f"index.device must be auto, cpu, gpu or gpu:N, not {config.device!r}",
            "fix config.toml",
        )
    if config.exact_max_segments < 0 or config.compressed_min_segments < 0:
        raise ConfigError("index sizes must not be negative", "fix [index] in config.toml")
    if config.refine_factor < 1 or config.nprobe < 0:
        raise ConfigError(
            "index.refine_factor must be >= 1 and index.nprobe >= 0", "fix config.toml"
        )


def plan_index(count: int, dim: int, config: IndexConfig) -> IndexPlan:
    """The index for `count` vectors: exact while small, IVF past the limit, IVF-PQ when huge.

    nlist ~ 2 sqrt(count), at least 512 (a power of two, 16..16384, at least 16 training points
    per list): training cost stays in seconds, and scanning nlist/32 lists (at least 32)
    measured recall@10 >= 0.95 on clustered 768-d data from 12k to 1M vectors.
    """
    if count <= config.exact_max_segments or count < MIN_POINTS * 16:
        return IndexPlan(IndexKind.FLAT)
    nlist = max(2 ** round(math.log2(2 * math.sqrt(count))), _MIN_LISTS)
    nlist = max(16, min(nlist, 16384, 2 ** int(math.log2(count / MIN_POINTS))))
    if count >= max(config.compressed_min_segments, _PQ_MIN_TRAIN) and _pq_bytes(dim):
        return IndexPlan(IndexKind.IVF_PQ, nlist, _pq_bytes(dim))
    return IndexPlan(IndexKind.IVF, nlist)


def plan_still_fits(plan: IndexPlan, count: int, dim: int, config: IndexConfig) -> bool:
    """Keep the current index? Changes of kind, or nlist off by 4x, call for a rebuild; going
    back to exact search waits until the collection is half the limit (no flapping)."""
    ideal = plan_index(count, dim, config)
    if plan.kind is IndexKind.FLAT:
        return ideal.kind is IndexKind.FLAT
    if ideal.kind is IndexKind.FLAT:
        return count > config.exact_max_segments // 2
    return ideal.kind is plan.kind and ideal.nlist / 4 < plan.nlist < ideal.nlist * 4


def index_dim(plan: IndexPlan, dim: int) -> int:
    """Columns of an index of `dim`-d vectors: two more for the biases (vectors.bias: text and
    file queries'), padded with zero columns to a multiple of the PQ bytes for a compressed
    index (PQ needs it; its bytes are at least 4)."""
    if plan.kind is IndexKind.IVF_PQ and plan.pq_m:
        return dim + plan.pq_m
    return dim + 2


def default_nprobe(plan: IndexPlan, config: IndexConfig) -> int:
    """Lists scanned per query: nlist/32, at least 32. Measured with bench/vectors.py (clustered
    768-d data, bias column, 2 cores): recall@10 0.96-0.99 from 100k to 300k vectors at
    0.6-3 ms, where nlist/16 cost twice the time for 0.01-0.02 more recall, and fewer than 32
    lists lost recall at small nlist (512 lists, 16 probes: 0.94)."""
    if plan.kind is IndexKind.FLAT:
        return 0
    wanted = config.nprobe or max(32, plan.nlist // 32)
    return min(plan.nlist, wanted)


def _pq_bytes(dim: int) -> int:
    for m in _GPU_PQ_BYTES:
        if dim % m == 0 and dim // m >= 8:
            return m
    return 0
