"""Package discovery; everything else about the build is in pyproject.toml.

The repository's top-level folders cli/ and indexers/ install as lbsearch.cli and
lbsearch.indexers (pyproject's [tool.setuptools.package-dir]), never as top-level `cli` and
`indexers`. pyproject's `packages.find` names a package after the folder it was found in, so it
cannot put the sub-packages of a mapped folder under lbsearch: they are found and named here.
Every folder is a package (namespace discovery), data-only folders such as cli/serve/static and
lbsearch/testing/data too, so a new module or data folder cannot be left out of the wheel
(tests/test_packaging.py compares the wheel with the source tree).
"""

from setuptools import find_namespace_packages, setup

MAPPED = {"lbsearch.cli": "cli", "lbsearch.indexers": "indexers"}
SKIP = ["__pycache__", "*.__pycache__"]


def packages() -> list[str]:
    found = find_namespace_packages(include=["lbsearch", "lbsearch.*"], exclude=SKIP)
    for name, folder in MAPPED.items():
        subs = find_namespace_packages(folder, exclude=SKIP)
        found += [name, *(f"{name}.{sub}" for sub in subs)]
    return sorted(found)


setup(packages=packages())
