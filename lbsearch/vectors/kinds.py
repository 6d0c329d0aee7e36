"""The two kinds of query a hubness bias is computed for (cheap to import: no numpy)."""

from __future__ import annotations

from enum import StrEnum


class BiasKind(StrEnum):
    """Which bias column a query subtracts: the caption bank's (a query with a text) or the
    library sample's (a query made of example files only)."""

    TEXT = "text"
    FILE = "file"

    @property
    def column(self) -> int:
        """Its column after the vector's: [v, b_text, b_file]."""
        return 0 if self is BiasKind.TEXT else 1

    @classmethod
    def of_query(cls, has_text: bool) -> BiasKind:
        """A query with a text (mixed with examples or not) is a text query."""
        return cls.TEXT if has_text else cls.FILE
