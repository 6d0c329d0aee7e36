"""`lbsearch pull`, `lbsearch models` and `lbsearch config`: checkpoints and settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from lbsearch.config import Config, default_config_text, user_config_path
from lbsearch.errors import UsageError
from lbsearch.types import Modality

from .context import settings

if TYPE_CHECKING:
    from lbsearch.embedder.tuned_towers import TowerTuning


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


def models_command(
    ctx: typer.Context,
    tune: Annotated[
        bool,
        typer.Option(
            "--tune",
            help="Measure every back-end/dtype of each tower on this machine (ONNX towers are "
            'exported first) and keep the fastest faithful one: what "auto" runs from now on.',
        ),
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--modality",
            "-m",
            help="With --tune: only these modalities (default: every checkpoint on this machine).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show the checkpoint each modality uses and whether it is on this machine."""
    from lbsearch.models.hub import checkpoint_status

    config = settings(ctx)
    if tune:
        _tune(config, only or [])
        return
    table = Table("modality", "model", "status", "embedding dim")
    for modality in Modality:
        model = config.models.for_modality(modality)
        status = checkpoint_status(model)
        table.add_row(modality.value, model, status.state, str(status.dim or "?"))
    _table_console().print(table)


def _table_console() -> Console:
    """A terminal's width; on a pipe or file the width the table needs (Rich would cut it, and
    the model paths in it, at 80 columns)."""
    import sys

    return Console(highlight=False, width=None if sys.stdout.isatty() else 10_000)


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


def _tune(config: Config, asked: list[str]) -> None:
    """`models --tune`: say what will happen (exports can take minutes), measure, show tables."""
    from lbsearch.embedder import EmbedderOptions
    from lbsearch.embedder.cache import cache_dir
    from lbsearch.embedder.tuned_towers import tune_towers
    from lbsearch.models.checkpoint import open_checkpoint

    options = EmbedderOptions.from_runtime(config.runtime)
    if not options.tunes():
        raise UsageError(
            f"[runtime] backend = {options.backend!r} and dtype = {options.dtype!r} leave "
            "nothing to measure",
            'set backend or dtype to "auto" (in config.toml) to let lbsearch measure them',
        )
    modalities = _tune_targets(config, asked)
    console = Console(stderr=True, highlight=False)
    names = ", ".join(m.value for m in modalities)
    console.print(
        f"Measuring every back-end and dtype of the {names} and text towers on this machine. "
        "ONNX Runtime towers are exported first where missing: full-size towers take 30-140 s "
        f"and 0.3-1.2 GB each, into {cache_dir() / 'onnx'}."
    )
    checkpoints = [(m, open_checkpoint(config.models.for_modality(m))) for m in modalities]
    for tuning in tune_towers(checkpoints, options, notify=console.print):
        _table_console().print(_tuning_table(tuning))


def _tune_targets(config: Config, asked: list[str]) -> list[Modality]:
    """The modalities asked for, else those whose checkpoint is on this machine (no download)."""
    from lbsearch.models.hub import checkpoint_status

    if asked:
        return list(dict.fromkeys(Modality.parse(m) for m in asked))
    present = ("cached", "local directory")
    found = [
        m for m in Modality if checkpoint_status(config.models.for_modality(m)).state in present
    ]
    if not found:
        raise UsageError(
            "no checkpoint is on this machine to measure",
            "run `lbsearch pull` first, or name one with --modality (it is downloaded)",
        )
    return found


def _tuning_table(tuning: TowerTuning) -> Table:
    tuned = tuning.tuned
    title = f"{tuning.tower} tower of {tuning.model_id}"
    table = Table("candidate", "items/s", "x float32", "min cosine", "faithful", "", title=title)
    decision = tuned.decision
    if decision is None:
        chosen = tuned.chosen or "the rule of options.py"
        table.add_row(str(chosen), "-", "-", "-", "-", "only candidate")
        return table
    base = decision.table[0].items_per_s or 1.0
    for row in decision.table:
        mark = "[bold green]auto[/]" if row.candidate == decision.chosen else ""
        table.add_row(
            str(row.candidate),
            f"{row.items_per_s:.2f}" if not row.error else "-",
            f"{row.items_per_s / base:.2f}" if not row.error else "-",
            f"{row.cosine:.5f}" if not row.error else row.error[:60],
            "yes" if row.faithful else "no",
            mark,
        )
    table.caption = f"{decision.items} items per candidate, {decision.seconds:.1f} s in all"
    return table
