"""`pip install .` ships what the installed package needs, under the lbsearch namespace only."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("lbsearch-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_cli_and_indexers_install_under_the_lbsearch_namespace(wheel_names: list[str]) -> None:
    tops = {name.split("/")[0] for name in wheel_names if not name.startswith("lbsearch-")}
    assert tops == {"lbsearch"}
    assert "lbsearch/cli/main.py" in wheel_names
    assert "lbsearch/indexers/__init__.py" in wheel_names


def test_wheel_carries_defaults_and_tokenizer_data(wheel_names: list[str]) -> None:
    assert "lbsearch/defaults.toml" in wheel_names
    assert "lbsearch/testing/data/clip_bpe_merges.txt.gz" in wheel_names
    assert "lbsearch/py.typed" in wheel_names
    for page in ("index.html", "app.js", "app.css"):  # the `lbsearch serve` web page
        assert f"lbsearch/cli/serve/static/{page}" in wheel_names


def test_packaged_defaults_are_the_top_level_config() -> None:
    """A real file (a symlink breaks Windows checkouts); `make fix` copies config.toml over it."""
    from lbsearch.config import default_config_text

    assert not (ROOT / "lbsearch" / "defaults.toml").is_symlink()
    assert default_config_text() == (ROOT / "config.toml").read_text(encoding="utf-8")


def test_version_and_license_come_from_one_place(wheel_names: list[str]) -> None:
    """The wheel's version is lbsearch.__version__ (pyproject reads it); LICENSE ships."""
    from lbsearch import __version__

    info = f"lbsearch-{__version__}.dist-info"
    assert f"{info}/METADATA" in wheel_names
    assert any(n.startswith(info) and n.endswith("LICENSE") for n in wheel_names), wheel_names
    assert (
        "version ="
        not in (ROOT / "pyproject.toml")
        .read_text(encoding="utf-8")
        .split("[tool.setuptools.dynamic]")[0]
    )
