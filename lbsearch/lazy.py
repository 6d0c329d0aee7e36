"""A package's names loaded on first use (PEP 562), so importing one light part of a package
(the query language, the extension lists) does not load its heavy parts (the engine, the pool)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: each name in `where` is imported from its module
    (relative to the package) when first asked for, then kept in the package's namespace. A
    name must not be a submodule's too: once that submodule is imported, the module would
    shadow it."""

    def load(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return load
