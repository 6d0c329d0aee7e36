"""Tests never read the developer's settings: the autouse fixture in conftest.py hides them."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lbsearch.config import CONFIG_ENV, load_config, user_config_path
from lbsearch.library import LIBRARY_ENV, locate_library

TESTS = Path(__file__).parent


@pytest.fixture
def bogus_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A broken config.toml where the platform looks for the user's settings."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    path = tmp_path / ".config" / "lbsearch" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[runtime]\nbatchsize = 'not a setting'\n", encoding="utf-8")
    return path


def test_a_user_config_file_does_not_leak_into_tests(
    bogus_user_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert load_config().sources == ("defaults",)
    assert user_config_path() != bogus_user_config
    base = tmp_path_factory.getbasetemp()
    assert Path(os.environ[CONFIG_ENV]).is_relative_to(base)
    assert locate_library().path.is_relative_to(base)
    assert os.environ[LIBRARY_ENV] == str(locate_library().path)


def test_the_model_cache_is_this_run_s_own() -> None:
    """A checkpoint in the developer's Hugging Face cache must not change what tests see."""
    from huggingface_hub import constants

    home = Path(os.environ["HF_HOME"])
    assert home.name.startswith("lbsearch-tests-hf-")
    assert Path(constants.HF_HUB_CACHE).is_relative_to(home)


def test_child_processes_are_isolated_too(bogus_user_config: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lbsearch", "config"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "# read from: defaults\n" in done.stdout


def test_no_test_module_reads_settings_at_import() -> None:
    """load_config() at module level would run at collection, before any fixture."""
    offenders = []
    for path in sorted(TESTS.glob("*.py")):
        for call in _module_level_calls(ast.parse(path.read_text(encoding="utf-8"))):
            name = getattr(call.func, "id", getattr(call.func, "attr", ""))
            if name == "load_config":
                offenders.append(f"{path.name}:{call.lineno}")
    assert offenders == []


def _module_level_calls(tree: ast.Module) -> list[ast.Call]:
    calls: list[ast.Call] = []
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue  # runs when called, inside a test
        if isinstance(node, ast.Call):
            calls.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return calls
