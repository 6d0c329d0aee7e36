"""`lbsearch pull`, `lbsearch models` and `lbsearch config`: checkpoints and settings."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lbsearch.config import default_config_text, user_config_path
from lbsearch.types import Modality

from .context import settings


def pull(
    ctx: typer.Context,
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="Repo ids (LanguageBind/LanguageBind_Audio) or modalities (audio); "
            "default: every configured model.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Download checkpoints into the Hugging Face cache (or refresh them), with progress."""
    from lbsearch.models.hub import is_local_reference
    from lbsearch.models.hub import pull as pull_repo

    config = settings(ctx)
    repos = _pull_targets(targets or [m.value for m in Modality], config.models)
    console = Console(stderr=True)
    for repo in repos:
        if is_local_reference(repo):
            console.print(f"{repo}: a local directory, nothing to download")
            continue
        console.print(f"pulling {repo}")
        path = pull_repo(repo)
        console.print(f"  ready in {path}")


def _pull_targets(targets: list[str], models: object) -> list[str]:
    repos: list[str] = []
    for target in targets:
        repo = getattr(models, target, None) if target in {m.value for m in Modality} else target
        if isinstance(repo, str) and repo not in repos:
            repos.append(repo)
    return repos


def models_command(ctx: typer.Context) -> None:
    """Show the checkpoint each modality uses and whether it is on this machine."""
    from lbsearch.models.hub import checkpoint_status

    config = settings(ctx)
    table = Table("modality", "model", "status", "embedding dim")
    for modality in Modality:
        model = config.models.for_modality(modality)
        status = checkpoint_status(model)
        table.add_row(modality.value, model, status.state, str(status.dim or "?"))
    Console().print(table)


def config_command(
    ctx: typer.Context,
    defaults: Annotated[
        bool, typer.Option("--defaults", help="Print the packaged config.toml (every key).")
    ] = False,
) -> None:
    """Show where settings come from and their effective values."""
    if defaults:
        print(default_config_text(), end="")
        return
    config = settings(ctx)
    print(f"# user config file: {user_config_path()}")
    print(f"# read from: {', '.join(config.sources)}")
    for section, values in config.sections().items():
        print(f"\n[{section}]")
        for key, value in vars(values).items():
            print(f"{key} = {_toml_value(value)}")


def _toml_value(value: object) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return json.dumps(value) if isinstance(value, str) else str(value)
