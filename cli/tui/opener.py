"""Opening a result in the system's viewer, at the segment's start where the player can seek.

Pure command building (`open_command`) is kept apart from launching (`open_in_viewer`) so the
choice of program is testable without starting anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

Which = Callable[[str], str | None]

# Players that take a start offset on the command line, best first.
SEEKING_PLAYERS: tuple[tuple[str, str], ...] = (
    ("mpv", "--start={seconds}"),
    ("vlc", "--start-time={seconds}"),
)


@dataclass(frozen=True)
class OpenCommand:
    """The program to run; `argv` is empty where the platform opens files itself (startfile)."""

    argv: tuple[str, ...]
    seeks: bool = False

    @property
    def label(self) -> str:
        return self.argv[0] if self.argv else "the system viewer"


def open_command(
    path: str,
    start_s: float = 0.0,
    *,
    timed: bool = False,
    platform: str = sys.platform,
    which: Which = shutil.which,
) -> OpenCommand:
    """How to open `path`: a seeking player for timed media (video, audio), else the default app."""
    if timed:
        for program, start_flag in SEEKING_PLAYERS:
            found = which(program)
            if found:
                flag = start_flag.format(seconds=_seconds(start_s))
                return OpenCommand((found, flag, path), seeks=True)
    if platform == "darwin":
        return OpenCommand(("open", path))
    if platform.startswith("win"):
        return OpenCommand(())
    return OpenCommand((which("xdg-open") or "xdg-open", path))


def _seconds(value: float) -> str:
    """A start offset as players read it: whole seconds without a fraction, else 3 decimals."""
    value = max(0.0, value)
    return str(int(value)) if value == int(value) else f"{value:.3f}"


@dataclass(frozen=True)
class Launched:
    """A started viewer. Its exit is collected by a background thread at once (no defunct
    child), and its stderr kept in a temporary file to say why it failed."""

    command: OpenCommand
    process: subprocess.Popen[bytes] | None = None
    errors: IO[bytes] | None = None

    def exit_code(self) -> int | None:
        """The viewer's exit status; None while it runs (or where the platform opened it)."""
        return None if self.process is None else self.process.poll()

    def complaint(self) -> str:
        """The last line the viewer wrote to stderr, if any."""
        if self.errors is None:
            return ""
        self.errors.seek(0)
        lines = self.errors.read()[-2000:].decode(errors="replace").strip().splitlines()
        return lines[-1].strip() if lines else ""


def launch(command: OpenCommand, path: str) -> Launched:
    """Start `command` detached from the terminal (its output must not draw over the TUI)."""
    if not command.argv:
        os.startfile(path)  # type: ignore[attr-defined]  # Windows only
        return Launched(command)
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - read when the viewer fails, then dropped
    process = subprocess.Popen(
        command.argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        start_new_session=True,
    )
    threading.Thread(target=process.wait, name="viewer-reaper", daemon=True).start()
    return Launched(command, process, errors)


def open_in_viewer(path: str, start_s: float = 0.0, *, timed: bool = False) -> Launched:
    """Open `path` in a viewer (at `start_s` where it can seek); see `launch`."""
    return launch(open_command(path, start_s, timed=timed), path)
