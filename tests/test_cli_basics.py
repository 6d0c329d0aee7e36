"""The command line: fast help, settings, text embedding, error rendering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from lbsearch.cli.main import app

runner = CliRunner()


def test_help_starts_without_heavy_imports() -> None:
    code = (
        "import sys, runpy; sys.argv = ['lbsearch', '--help']\n"
        "try:\n    runpy.run_module('lbsearch', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'faiss', 'av', 'numpy') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Commands" in done.stdout and "embed" in done.stdout
    assert "HEAVY []" in done.stdout, done.stdout


def test_console_script_and_module_agree() -> None:
    module = subprocess.run(
        [sys.executable, "-m", "lbsearch", "--version"], capture_output=True, text=True, timeout=60
    )
    assert module.returncode == 0 and module.stdout.startswith("lbsearch ")


def test_config_shows_effective_values(tiny_config: Path) -> None:
    result = runner.invoke(app, ["--config", str(tiny_config), "config"])
    assert result.exit_code == 0, result.output
    assert f"read from: defaults, {tiny_config}" in result.output
    assert 'device = "cpu"' in result.output


def test_config_shows_every_section() -> None:
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    shown = [line for line in result.output.splitlines() if line.startswith("[")]
    packaged = (Path(__file__).parents[1] / "config.toml").read_text(encoding="utf-8")
    assert shown == [line for line in packaged.splitlines() if line.startswith("[")]
    assert "lock_timeout_s = 0.0" in result.output and "exact_max_segments = 10000" in result.output


def test_config_defaults_print_the_packaged_file() -> None:
    result = runner.invoke(app, ["config", "--defaults"])
    top_level = Path(__file__).parents[1] / "config.toml"
    assert result.output == top_level.read_text(encoding="utf-8")


def test_unknown_setting_is_an_actionable_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[runtime]\nbatchsize = 3\n")
    result = runner.invoke(app, ["--config", str(bad), "config"])
    assert result.exit_code == 2
    assert "unknown setting 'batchsize'" in result.output and "hint:" in result.output


def test_embed_text_prints_json_lines(tiny_config: Path) -> None:
    args = [
        "--config",
        str(tiny_config),
        "embed",
        "--text",
        "a dog",
        "--text",
        "rain",
        "--modality",
        "audio",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["a dog", "rain"]
    vector = lines[0]["segments"][0]["embedding"]
    assert len(vector) == 16 and abs(sum(v * v for v in vector) - 1) < 1e-5
    assert lines[0]["model"].endswith("audio_ft")


def test_models_lists_every_modality(tiny_config: Path) -> None:
    result = runner.invoke(app, ["--config", str(tiny_config), "models"])
    assert result.exit_code == 0, result.output
    for modality in ("image", "video", "audio", "depth", "thermal"):
        assert modality in result.output
    assert "local directory" in result.output
