"""Tables printed to a pipe (`models`, `status`) are never cut at 80 columns: paths stay whole."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from lbsearch.catalog import FailedFile, RunCounts
from lbsearch.cli.main import app
from lbsearch.config import Config

runner = CliRunner()  # its stdout is not a terminal: a pipe
LONG = "/media/archive/2019/holidays/from-the-old-laptop/really/quite/deep/folder/and/deeper/still"


def test_models_table_keeps_a_long_model_path_whole(tmp_path: Path) -> None:
    model = f"{LONG}/my-finetuned-image-checkpoint"
    config = tmp_path / "config.toml"
    config.write_text(f'[models]\nimage = "{model}"\n')
    result = runner.invoke(app, ["--config", str(config), "models"], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    assert model in result.output, result.output
    assert "…" not in result.output


def test_status_table_keeps_a_long_path_on_one_line(tmp_path: Path) -> None:
    from lbsearch.library import Library

    path = f"{LONG}/a-video-that-would-not-decode.mp4"
    with Library.open(tmp_path / "lib", config=Config(), write=True) as lib:
        run = lib.start_run(["/media"], {})
        lib.write_batch([FailedFile(path, "/media", 10, 1, "corrupt", "FFmpeg cannot read it")])
        lib.finish_run(run, RunCounts(failed=1), "finished")
    args = ["status", "--library", str(tmp_path / "lib")]
    result = runner.invoke(app, args, env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    assert path in result.output, result.output
