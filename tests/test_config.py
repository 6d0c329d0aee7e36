"""Settings come from one source: the dataclasses and the packaged config.toml agree."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import tomllib
from pathlib import Path

import pytest

from lbsearch import config as config_module
from lbsearch.config import Config, ConfigError, default_config_text, load_config

ROOT = Path(__file__).parents[1]


def test_dataclass_defaults_are_the_packaged_defaults() -> None:
    loaded = load_config()
    assert loaded.sources == ("defaults",)  # the isolation fixture hides any user file
    assert dataclasses.replace(loaded, sources=()) == Config()


def test_the_packaged_file_and_the_dataclasses_list_the_same_keys() -> None:
    packaged = tomllib.loads(default_config_text())
    sections = Config().sections()
    assert list(packaged) == list(sections)
    for name, values in sections.items():
        assert list(packaged[name]) == [f.name for f in dataclasses.fields(values)], name


def test_a_packaged_key_unknown_to_the_dataclasses_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stale = default_config_text() + "retired_setting = 1\n"  # lands in the last section
    monkeypatch.setattr(config_module, "default_config_text", lambda: stale)
    with pytest.raises(ConfigError, match="retired_setting"):
        load_config()


def test_every_setting_has_a_docstring_and_a_comment() -> None:
    """Each field is documented where it is declared and where users read it (config.toml)."""
    tree = ast.parse(inspect.getsource(config_module))
    documented: set[str] = set()
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for field, after in zip(cls.body, [*cls.body[1:], None], strict=True):
            if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name):
                has_doc = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                assert has_doc, f"{cls.name}.{field.target.id} has no docstring"
                documented.add(f"{cls.name}.{field.target.id}")
    assert len(documented) > 40
    lines = (ROOT / "config.toml").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            above = number - 1  # a comment may serve a group of keys ([models])
            while above >= 0 and lines[above] and not lines[above].startswith(("#", "[")):
                above -= 1
            assert lines[above].startswith("#"), f"config.toml: {line!r} has no comment"
