"""Turning core errors into messages and exit codes; the core never prints or exits itself."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from lbsearch.errors import LbsearchError

F = TypeVar("F", bound=Callable[..., Any])


def report(error: LbsearchError) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(Text.assemble(("error: ", "bold red"), error.message))
    if error.hint:
        console.print(Text.assemble(("hint: ", "yellow"), error.hint))


def handles_errors(command: F) -> F:
    """Render LbsearchError as `error:` + `hint:` on stderr and exit with the error's code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LbsearchError as error:
            report(error)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
