"""Errors the core raises. Each carries a hint that tells the user what to do next.

The core never prints or exits; the CLI renders these (message, then hint) and picks the exit code.
"""

from __future__ import annotations


class LbsearchError(Exception):
    """Base of every error lbsearch raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(LbsearchError):
    """A configuration file or value is invalid."""

    exit_code = 2


class UsageError(LbsearchError):
    """The command was called with arguments that cannot work together."""

    exit_code = 2


class ModelNotAvailableError(LbsearchError):
    """A checkpoint is neither on disk nor downloadable (offline, missing repo, no access)."""

    exit_code = 3


class CheckpointError(LbsearchError):
    """A checkpoint exists but its config or weights are not a LanguageBind checkpoint we know."""

    exit_code = 3


class MediaError(LbsearchError):
    """A file could not be turned into encoder input; `reason` is a short stable code."""

    def __init__(self, path: str, reason: str, detail: str, hint: str = "") -> None:
        super().__init__(f"{path}: {detail}", hint)
        self.path = path
        self.reason = reason
        self.detail = detail
