"""What a walk could not see, and the sweep that only trusts what it saw.

A folder that cannot be listed (missing, permission denied, an I/O error) or that is empty while
the catalog holds files under it (an unmounted drive's mount point) is *offline*: its files keep
their rows and vectors, the run reports it and ends with status 1, and searches mark the files.
Only a folder that was listed sweeps the catalogued files it no longer holds; a file left out by
an ignore rule or a flag, but still on disk, is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lbsearch.catalog import OfflineFolder
from lbsearch.errors import UsageError
from lbsearch.library import Library
from lbsearch.library.core import is_under_any

from .progress import Progress, Swept, Warning_
from .walk import EmptyFolder, FoundFile, WalkOptions, WalkProblem, walk


@dataclass
class Walked:
    """One run's walk: the files found (as an iterator) and the folders found offline."""

    roots: Sequence[Path]
    options: WalkOptions
    library: Library
    progress: Progress
    offline: list[OfflineFolder] = field(default_factory=list)

    def files(self) -> Iterator[FoundFile]:
        for item in walk(self.roots, self.options):
            if isinstance(item, FoundFile):
                yield item
            elif isinstance(item, EmptyFolder):
                self._empty(item)
            elif item.folder:
                self._unlisted(item)
            else:
                self.progress(Warning_(str(item.path), item.detail))

    @property
    def kept(self) -> int:
        """Catalogued files kept because their folder is offline."""
        return sum(folder.files for folder in self.offline)

    def _empty(self, item: EmptyFolder) -> None:
        kept = self.library.count_files(str(item.path))
        if kept:
            reason = "the folder is empty but the library holds files from it (not mounted?)"
            self._mark(item.path, item.root, reason, kept)

    def _unlisted(self, item: WalkProblem) -> None:
        kept = self.library.count_files(str(item.path))
        self._mark(item.path, item.root or item.path, item.detail, kept)

    def _mark(self, path: Path, root: Path, reason: str, kept: int) -> None:
        self.offline.append(OfflineFolder(str(path), str(root), reason, 0.0, kept))
        what = f"{kept} indexed file{'s' * (kept != 1)} kept" if kept else "nothing indexed from it"
        self.progress(Warning_(str(path), f"offline: {reason}; {what}"))


def refuse_unknown_roots(roots: Sequence[Path], library: Library) -> None:
    """A root that does not exist and never gave the library a file is a typo, not a drive."""
    for root in roots:
        if not root.exists() and not library.count_files(str(root)):
            raise UsageError(
                f"{root}: no such file or folder (and the library holds nothing from it)",
                "check the path; a drive that is not mounted must be indexed once while it is",
            )


def sweep(
    library: Library, roots: Sequence[Path], seen: set[str], walked: Walked, progress: Progress
) -> int:
    """Forget files under the walked roots that listed folders no longer hold. Files under
    offline folders stay, and so do files still on disk that this run left out (an ignore
    rule, `--exclude`, hidden files without `--include-hidden`): a changed setting is not a
    request to delete (`lbsearch forget` is)."""
    offline = [folder.folder for folder in walked.offline]
    gone = [
        record.id
        for root in roots
        for record in library.iter_files(str(root))
        if record.path not in seen
        and not is_under_any(record.path, offline)
        and not _still_there(record.path)
    ]
    if gone:
        library.delete_files(gone)
        progress(Swept(len(gone)))
    return len(gone)


def _still_there(path: str) -> bool:
    """Whether `path` may still exist: only "no such file" (of it or a folder above it) counts
    as gone; any other error (permissions, I/O) keeps the file."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True
