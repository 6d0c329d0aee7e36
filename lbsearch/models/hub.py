"""Find a checkpoint on disk: a local directory, or a Hugging Face repo in the standard HF cache.

Repo files already in the cache are used without any network request (a cold query should not
wait on the hub); `pull` downloads or refreshes them, with huggingface_hub's progress bars.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, ModelNotAvailableError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def is_local_reference(model: str) -> bool:
    """A model string names a directory when it exists or is written like a path."""
    return Path(model).expanduser().exists() or model.startswith((".", "/", "~")) or "\\" in model


def resolve_checkpoint(model: str) -> Path:
    """The directory holding config.json, one weights file and the tokenizer files of `model`."""
    if is_local_reference(model):
        return _local_checkpoint(Path(model).expanduser())
    if model.count("/") != 1:
        raise ModelNotAvailableError(
            f"{model!r} is neither a directory nor a Hugging Face repo id (owner/name)",
            "give a repo id such as LanguageBind/LanguageBind_Image or a checkpoint directory",
        )
    cached = _cached_snapshot(model)
    return cached if cached is not None else pull(model)


def available_without_download(model: str) -> bool:
    """True when `model` is a local directory or already in the Hugging Face cache."""
    if is_local_reference(model):
        return Path(model).expanduser().is_dir()
    return model.count("/") == 1 and _cached_snapshot(model) is not None


def _local_checkpoint(directory: Path) -> Path:
    if not directory.is_dir():
        raise ModelNotAvailableError(
            f"{directory}: checkpoint directory not found",
            "point [models] in config.toml (or --model) at a directory with config.json and weights",
        )
    if not (directory / "config.json").is_file():
        raise CheckpointError(
            f"{directory}: no config.json in this checkpoint directory",
            "a LanguageBind checkpoint directory holds config.json, weights and tokenizer files",
        )
    weights_file(directory)
    return directory.resolve()


def weights_file(directory: Path) -> Path:
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    raise CheckpointError(
        f"{directory}: no weights file ({' or '.join(WEIGHT_FILES)})",
        "re-download the checkpoint with `lbsearch pull` or copy its weights file there",
    )


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(config, str):
        return None
    snapshot = Path(config).parent
    has_weights = any((snapshot / name).is_file() for name in WEIGHT_FILES)
    has_tokenizer = (snapshot / "tokenizer.json").is_file() or (snapshot / "vocab.json").is_file()
    return snapshot if has_weights and has_tokenizer else None


def pull(repo_id: str) -> Path:
    """Download (or refresh) a repo's checkpoint files into the HF cache; returns the snapshot dir."""
    if not _offline() and not _hub_resolvable():
        raise _offline_error(repo_id)
    config = _download(repo_id, "config.json", required=True)
    assert config is not None
    if not any(_download(repo_id, name, required=False) for name in WEIGHT_FILES):
        if _offline():
            raise _offline_error(repo_id)
        raise CheckpointError(
            f"{repo_id}: the repo has no {' or '.join(WEIGHT_FILES)}",
            "check the repo id: lbsearch needs a LanguageBind checkpoint repo",
        )
    for name in TOKENIZER_FILES:
        _download(repo_id, name, required=False)
    return config.parent


def _download(repo_id: str, filename: str, required: bool) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return Path(hf_hub_download(repo_id, filename))
    except LocalEntryNotFoundError as exc:
        if required:
            raise _offline_error(repo_id) from exc
        return None
    except RepositoryNotFoundError as exc:
        raise ModelNotAvailableError(
            f"{repo_id}: no such Hugging Face repo (or it needs a login)",
            "check the repo id; for a private or gated repo run `hf auth login` first",
        ) from exc
    except EntryNotFoundError as exc:
        if required:
            raise CheckpointError(
                f"{repo_id}: the repo has no {filename}", "check the repo id"
            ) from exc
        return None
    except HfHubHTTPError as exc:
        if not required and getattr(exc.response, "status_code", None) == 404:
            return None
        raise _network_error(repo_id, exc) from exc
    except OSError as exc:
        raise _network_error(repo_id, exc) from exc


def _hub_resolvable() -> bool:
    """Fail fast without a network: huggingface_hub retries a dead DNS lookup for ~25 s.

    Behind a proxy the hub's name may not resolve locally, so the check is skipped there.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _offline_error(repo_id: str) -> ModelNotAvailableError:
    why = (
        "downloads are off (HF_HUB_OFFLINE is set)"
        if _offline()
        else "the hub cannot be reached (no network)"
    )
    return ModelNotAvailableError(
        f"{repo_id}: checkpoint is not in the Hugging Face cache and {why}",
        f"run `lbsearch pull {repo_id}` where the network is available (it fills "
        "~/.cache/huggingface), or set the modality's entry in [models] of config.toml "
        "(or --model) to a local checkpoint directory",
    )


def _network_error(repo_id: str, exc: Exception) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"{repo_id}: download failed: {exc}",
        f"check the network and retry `lbsearch pull {repo_id}`, or use a local checkpoint directory",
    )


@dataclass(frozen=True)
class CheckpointStatus:
    state: str  # "local directory", "cached", "not downloaded", "missing directory"
    dim: int | None


def checkpoint_status(model: str) -> CheckpointStatus:
    """Where a configured model stands, without loading weights or touching the network."""
    if is_local_reference(model):
        directory = Path(model).expanduser()
        if not (directory / "config.json").is_file():
            return CheckpointStatus("missing directory", None)
        return CheckpointStatus("local directory", _projection_dim(directory / "config.json"))
    snapshot = _cached_snapshot(model) if model.count("/") == 1 else None
    if snapshot is None:
        return CheckpointStatus("not downloaded", None)
    return CheckpointStatus("cached", _projection_dim(snapshot / "config.json"))


def _projection_dim(config_path: Path) -> int | None:
    try:
        value = json.loads(config_path.read_text(encoding="utf-8")).get("projection_dim")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None
