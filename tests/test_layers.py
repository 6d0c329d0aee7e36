"""Import hygiene: importing a layer never loads a layer above it, nor the front ends' libraries.

The static check is import-linter (`make lint`, contracts in pyproject.toml). This one runs the
imports for real, one fresh interpreter per layer, so it also sees imports made by name at run
time. Packages are walked through their own `__path__`: under an editable install `lbsearch.cli`
and `lbsearch.indexers` live outside lbsearch/, where a walk of `lbsearch.__path__` misses them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

UI_LIBRARIES = ("typer", "rich", "textual")
HEAVY = ("torch", "transformers", "faiss")

# Bottom to top, as in pyproject.toml's layers contract.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("basics", ("lbsearch.types", "lbsearch.errors", "lbsearch.config")),
    (
        "models, media and storage",
        ("lbsearch.models", "lbsearch.media", "lbsearch.catalog", "lbsearch.vectors"),
    ),
    ("embedder and library", ("lbsearch.embedder", "lbsearch.library")),
    (
        "pipeline and search",
        ("lbsearch.indexers", "lbsearch.search", "lbsearch.embedding", "lbsearch.thumbnails"),
    ),
    ("front ends", ("lbsearch.cli",)),
]

IMPORT_ALL = """
import importlib, json, pkgutil, sys
for name in json.loads(sys.argv[1]):
    package = importlib.import_module(name)
    for found in pkgutil.walk_packages(getattr(package, "__path__", []), name + "."):
        importlib.import_module(found.name)
print(json.dumps(sorted(sys.modules)))
"""


def loaded_after_importing(packages: tuple[str, ...]) -> set[str]:
    """Every module in sys.modules after importing `packages` and all their submodules."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, json.dumps(packages)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def checks() -> list[object]:
    """(layer, its packages, what importing it must not load), one pytest param per layer."""
    out = []
    for level, (name, packages) in enumerate(LAYERS):
        above = tuple(p for _, higher in LAYERS[level + 1 :] for p in higher)
        forbidden = above + (UI_LIBRARIES if name != "front ends" else HEAVY)
        out.append(pytest.param(name, packages, forbidden, id=name))
    support = ("lbsearch.testing",)
    out.append(pytest.param("test support", support, ("lbsearch.cli", *UI_LIBRARIES), id="testing"))
    return out


@pytest.mark.parametrize(("layer", "packages", "forbidden"), checks())
def test_a_layer_never_loads_what_sits_above_it(
    layer: str, packages: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    loaded = loaded_after_importing(packages)
    walked = {m for m in loaded if under(m, packages)}
    assert set(packages) <= walked, f"{layer}: not importable"
    offenders = sorted(m for m in loaded if under(m, forbidden))
    assert offenders == [], f"importing {layer} ({', '.join(packages)}) loaded {offenders}"


def test_the_walk_reaches_the_mapped_folders() -> None:
    """cli/ and indexers/ are found (the old check walked lbsearch/ alone and never saw them)."""
    loaded = loaded_after_importing(("lbsearch.indexers", "lbsearch.cli"))
    assert {"lbsearch.indexers.pipeline", "lbsearch.cli.main", "lbsearch.cli.tui"} <= loaded


def test_search_and_front_ends_read_through_the_library() -> None:
    """`Library` is the one place where the catalog and the indices meet: the engine and the
    front ends ask it (file_by_path, segments_by_ids, search...), never `library.catalog`."""
    import ast
    from pathlib import Path

    root = Path(__file__).parents[1]
    sources = [*(root / "lbsearch" / "search").rglob("*.py"), *(root / "cli").rglob("*.py")]
    offenders = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("catalog", "vectors"):
                owner = node.value.id if isinstance(node.value, ast.Name) else ""
                if owner != "stats":  # LibraryStats.catalog: the counts of `lbsearch status`
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert len(sources) > 10 and offenders == []
