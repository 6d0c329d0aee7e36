"""`lbsearch index --ray`: decoding and encoding on a Ray cluster (Ray Data), everything else
(walk, plan, content-hash reuse, writer lock, commits, sweep, saves) on this machine, as in a
local run. Ray is an optional extra: nothing here imports it before a run starts.

- `RayOptions`: the cluster address and pool sizes; `ray_options_from(config, factory, ...)`
  merges the command line with the [index] settings.
- `EmbedderFactory`: builds the embedder inside each encoder actor; `LanguageBindFactory` is the
  real one.
"""

from __future__ import annotations

from .factory import LanguageBindFactory
from .options import (
    INSTALL_HINT,
    EmbedderFactory,
    RayOptions,
    RayRunError,
    import_ray,
    ray_options_from,
)

__all__ = [
    "INSTALL_HINT",
    "EmbedderFactory",
    "LanguageBindFactory",
    "RayOptions",
    "RayRunError",
    "import_ray",
    "ray_options_from",
]
