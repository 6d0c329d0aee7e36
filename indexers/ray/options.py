"""How `lbsearch index --ray` runs: where the cluster is and how big its pools are.

Nothing here imports Ray, so the CLI and settings can build options (and say how to install Ray)
on machines without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lbsearch.config import Config
from lbsearch.errors import LbsearchError, UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from lbsearch.embedder import Encoding
    from lbsearch.types import Modality, Segment

INSTALL_HINT = "install the Ray extra: pip install 'lbsearch[ray]'  (or: pip install 'ray[data]')"


class RayRunError(LbsearchError):
    """The Ray cluster cannot run this index (unreachable, a node cannot read the files...)."""


class SegmentEmbedder(Protocol):
    """What an encoder actor needs of an `lbsearch.embedder.Embedder`."""

    def embed_segments(self, modality: Modality, segments: Sequence[Segment]) -> np.ndarray: ...

    def encoding(self, modality: Modality) -> Encoding: ...


class EmbedderFactory(Protocol):
    """Builds the embedder inside an encoder actor: one call (one checkpoint load) per actor.

    Must be picklable: it travels to the actors."""

    def __call__(self) -> SegmentEmbedder: ...


@dataclass(frozen=True)
class RayOptions:
    """`address`: "local" starts a Ray instance on this machine, "auto" joins the cluster this
    machine belongs to (RAY_ADDRESS or a running head), anything else is a cluster address.

    `actors`: encoder actors per modality (0: as many as the cluster's GPUs / `gpus_per_actor`,
    or its CPUs left after one decode task, when encoding on CPUs). `decode_cpus`: CPUs each
    decode task reserves. `local_cpus` and `object_store_bytes` size a "local" instance
    (0: Ray's defaults). When Ray is already initialised in this process, it is used as is."""

    factory: EmbedderFactory
    address: str = "local"
    actors: int = 0
    gpus_per_actor: float = 0.0
    decode_cpus: float = 1.0
    local_cpus: int = 0
    object_store_bytes: int = 0
    windows_per_part: int = 12  # a long video is decoded in parts of this many windows

    def __post_init__(self) -> None:
        if self.actors < 0 or self.gpus_per_actor < 0 or self.decode_cpus <= 0:
            raise UsageError(
                "--actors and --gpus-per-actor must be >= 0 and --decode-cpus > 0",
                "for example: --ray local --actors 2 --decode-cpus 1",
            )


def import_ray() -> Any:
    """The ray module, or a UsageError that says how to install it.

    Ray reports usage statistics to its developers by default; lbsearch's runs do not (a
    local instance it starts, and its own driver), unless RAY_USAGE_STATS_ENABLED says so. A
    cluster started by hand follows its own setting (`ray start --disable-usage-stats`)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data  # a separate part of ray: "ray" alone lacks it
    except ImportError as exc:
        raise UsageError(
            f"--ray needs Ray Data, which is not installed ({exc})", INSTALL_HINT
        ) from None
    return ray


def ray_options_from(
    config: Config,
    factory: EmbedderFactory,
    address: str | None = None,
    actors: int | None = None,
    gpus_per_actor: float | None = None,
    decode_cpus: float | None = None,
) -> RayOptions | None:
    """Options from the command line, falling back to the [index] settings; None: no Ray."""
    settings = config.index
    address = address if address is not None else settings.ray
    if not address:
        return None
    return RayOptions(
        factory=factory,
        address=address,
        actors=settings.ray_actors if actors is None else actors,
        gpus_per_actor=settings.ray_gpus_per_actor if gpus_per_actor is None else gpus_per_actor,
        decode_cpus=settings.ray_decode_cpus if decode_cpus is None else decode_cpus,
    )
