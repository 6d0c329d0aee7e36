"""Check the import contracts of pyproject.toml ([tool.importlinter]) on the installed layout.

import-linter finds a package's modules in the folder the package is imported from. An editable
install (`pip install -e .`) imports `lbsearch` from lbsearch/ while `lbsearch.cli` and
`lbsearch.indexers` come from the top-level folders cli/ and indexers/ (setuptools package-dir
mapping), so they would be invisible to it. This script lays the sources out as a wheel installs
them (a temporary copy, read from [tool.setuptools.package-dir]) and runs import-linter there.

Usage: python tools/lint_imports.py   (exit status 0 when every contract holds)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lbsearch"


def lay_out(pyproject: Path, target: Path) -> Path:
    """Copy the package and its mapped sub-packages under `target` as installed; returns it."""
    settings = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    mapping: dict[str, str] = settings["tool"]["setuptools"].get("package-dir", {})
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / PACKAGE, target / PACKAGE, ignore=skip)
    for name, folder in sorted(mapping.items()):  # parents before children
        if not name.startswith(f"{PACKAGE}."):
            continue
        shutil.copytree(ROOT / folder, target.joinpath(*name.split(".")), ignore=skip)
    return target


def main() -> int:
    from importlinter.cli import lint_imports

    pyproject = ROOT / "pyproject.toml"
    with tempfile.TemporaryDirectory(prefix="lbsearch-layers-") as tmp:
        # import-linter puts the working directory first on sys.path: work in the copy.
        os.chdir(lay_out(pyproject, Path(tmp)))
        try:
            return lint_imports(config_filename=str(pyproject), no_cache=True, no_logo=True)
        finally:
            os.chdir(ROOT)


if __name__ == "__main__":
    sys.exit(main())
