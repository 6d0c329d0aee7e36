"""`pip install .` ships what the installed package needs, under the lbsearch namespace only.

The wheel is built (offline, from a copy of the source files: tools/smoke_wheel.py) and compared
file by file with the source tree: every module and data file of lbsearch/, cli/ and indexers/,
under its installed name, and nothing else. `make smoke` then installs that wheel into a fresh
virtual environment and runs the commands.
"""

from __future__ import annotations

import importlib.util
import zipfile
from email.parser import Parser
from pathlib import Path, PurePosixPath
from types import ModuleType

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.timeout(300)


def _smoke_tools() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smoke_wheel", ROOT / "tools" / "smoke_wheel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


smoke = _smoke_tools()


def installed_name(source: Path) -> str:
    """Where a file of the repository lands in site-packages: cli/ and indexers/ go under
    lbsearch/ (pyproject's package-dir), lbsearch/ stays."""
    parts = source.parts
    top = parts[0] if parts[0] == "lbsearch" else f"lbsearch/{parts[0]}"
    return str(PurePosixPath(top, *parts[1:]))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(smoke.build_wheel(tmp_path_factory.mktemp("wheel")))


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_holds_every_module_and_data_file_of_the_source_tree(
    wheel_names: list[str],
) -> None:
    """A module or data file left out fails here, not as a ModuleNotFoundError for a user."""
    sources = smoke.source_files(ROOT)
    assert any(s.parts[:2] == ("lbsearch", "search") for s in sources)  # the listing works
    expected = {installed_name(s) for s in sources}
    shipped = {n for n in wheel_names if not n.split("/")[0].endswith(".dist-info")}
    assert sorted(expected - shipped) == [], "in the source tree, missing from the wheel"
    assert sorted(shipped - expected) == [], "in the wheel, not in the source tree"


def test_cli_and_indexers_install_under_the_lbsearch_namespace(wheel_names: list[str]) -> None:
    tops = {name.split("/")[0] for name in wheel_names if not name.startswith("lbsearch-")}
    assert tops == {"lbsearch"}
    assert "lbsearch/cli/main.py" in wheel_names
    assert "lbsearch/indexers/__init__.py" in wheel_names
    assert "lbsearch/search/engine.py" in wheel_names


def test_wheel_carries_defaults_and_tokenizer_data(wheel_names: list[str]) -> None:
    assert "lbsearch/defaults.toml" in wheel_names
    assert "lbsearch/testing/data/clip_bpe_merges.txt.gz" in wheel_names
    assert "lbsearch/py.typed" in wheel_names
    for page in ("index.html", "app.js", "app.css"):  # the `lbsearch serve` web page
        assert f"lbsearch/cli/serve/static/{page}" in wheel_names


PLATFORMS = {
    "linux-x86_64": {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
    },
    "linux-aarch64": {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "aarch64",
    },
    "macos-arm64": {
        "sys_platform": "darwin",
        "platform_system": "Darwin",
        "platform_machine": "arm64",
    },
    "windows": {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64"},
}


def _requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(name).decode("utf-8"))
    return [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_exactly_one_faiss_build_whatever_the_extras(wheel: Path, platform: str) -> None:
    """faiss-cpu and the faiss-gpu builds own the same `faiss` module: an install that gets two
    of them is broken (files of one overwrite the other's). Plain and with any extra: one."""
    requirements = _requirements(wheel)
    extras = sorted({m for r in requirements for m in _extras_named(r)})
    for chosen in [[], *([e] for e in extras), extras]:
        faiss = {
            r.name
            for r in requirements
            if r.name.startswith("faiss")
            and _applies(r, {**PLATFORMS[platform], "python_version": "3.11"}, chosen)
        }
        assert len(faiss) == 1, (platform, chosen, faiss)


def _extras_named(requirement: Requirement) -> list[str]:
    marker = str(requirement.marker or "")
    return [part.split('"')[1] for part in marker.split("extra == ")[1:]]


def _applies(requirement: Requirement, environment: dict[str, str], extras: list[str]) -> bool:
    """As pip decides: the base requirements, then those of each requested extra."""
    if requirement.marker is None:
        return True
    return any(
        requirement.marker.evaluate({**environment, "extra": extra}) for extra in ["", *extras]
    )


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
