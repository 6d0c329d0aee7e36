"""Things every command needs: the settings, chosen by the global --config option."""

from __future__ import annotations

from pathlib import Path

import typer

from lbsearch.config import Config, load_config


def settings(ctx: typer.Context) -> Config:
    path: Path | None = (ctx.find_root().obj or {}).get("config")
    return load_config(path)
