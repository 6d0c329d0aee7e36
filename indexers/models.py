"""Which model each modality is embedded with, and what a run does when that changed.

The back-end and dtype are provenance (recorded per run). A new preprocessing version of the same
checkpoint keeps the stored vectors serving and embeds new files with the new version. Another
checkpoint is another vector space: refused (ModelChangedError, exit 2, nothing changed) unless
the user passed `--reembed`, which embeds the modality again beside the old vectors; the run
switches to the new ones once every file has them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lbsearch.catalog import ModelChangedError, ShadowModel
from lbsearch.config import Config
from lbsearch.embedder import Embedder
from lbsearch.library import Library
from lbsearch.media.versions import preprocess_version
from lbsearch.types import Modality

from .progress import Progress, Warning_


@dataclass(frozen=True)
class ModelPlan:
    """Per run: the modalities re-embedded beside their old vectors (`--reembed`)."""

    reembed: frozenset[Modality] = frozenset()


def register_models(
    library: Library, encoders: Embedder, config: Config, reembed: bool, progress: Progress
) -> ModelPlan:
    """Check every modality's model against the library's before anything is written."""
    states = library.modality_states()
    changed = [m for m in Modality if m in states and states[m].model_id != encoders.model_id(m)]
    if changed and not reembed:
        first = changed[0]
        raise ModelChangedError(
            first, states[first].model_id, encoders.model_id(first), library.root
        )
    shadow: set[Modality] = set()
    for modality in Modality:
        model_id, version = encoders.model_id(modality), preprocess_version(modality, config)
        if modality in changed:
            _begin(library, modality, ShadowModel(model_id, version, None), progress)
            shadow.add(modality)
            continue
        library.set_modality(modality, model_id, version)
        outdated = library.outdated_files(modality)
        if outdated and reembed:
            _begin(library, modality, ShadowModel(model_id, version, None), progress)
            shadow.add(modality)
        elif outdated:
            progress(
                Warning_(
                    str(library.root),
                    f"{outdated} {modality} file{'s' * (outdated != 1)} keep vectors of an older "
                    "preprocessing version (they keep serving); `lbsearch index --reembed` "
                    "refreshes them",
                )
            )
    return ModelPlan(frozenset(shadow))


def model_recipe(modality: Modality, config: Config) -> str:
    """Recorded with the model id: the preprocessing the vectors are made with. The back-end
    and dtype are not part of it: torch fp32/bf16/fp16 and ONNX Runtime fp32/int8 give the same
    vectors for search (cosine >= 0.997), so they are recorded per run, as provenance."""
    return preprocess_version(modality, config)


def _begin(library: Library, modality: Modality, target: ShadowModel, progress: Progress) -> None:
    resumed = library.begin_reembed(modality, target)
    left = library.reembed_todo(modality)
    verb = "resuming the re-embed" if resumed else "re-embedding"
    progress(
        Warning_(
            str(library.root),
            f"{verb} of {modality} with {target.model_id} ({left} file{'s' * (left != 1)} to "
            "go); searches use the old vectors until every file has new ones",
        )
    )


def finish_reembeds(library: Library, plan: ModelPlan, progress: Progress) -> list[Modality]:
    """Switch each re-embedded modality whose every file has new vectors; tell the others."""
    switched = []
    for modality in sorted(plan.reembed):
        left = library.reembed_todo(modality)
        if left:
            progress(
                Warning_(
                    str(library.root),
                    f"the re-embed of {modality} is not complete ({left} file"
                    f"{'s' * (left != 1)} left, offline or unreadable); the old vectors keep "
                    "serving: run `lbsearch index --reembed` again to finish it",
                )
            )
            continue
        library.finish_reembed(modality)
        switched.append(modality)
    return switched
