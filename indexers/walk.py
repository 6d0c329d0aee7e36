"""Finding the files to index under the given roots.

Hidden files and folders are skipped unless asked for; `.lbsearchignore` files (gitignore syntax)
apply to the folder they sit in and everything below it, like `.gitignore`; `--exclude` globs
apply everywhere. Symbolic links are followed, and a folder reached twice (a link loop, or two
links to one place) is walked once. Only names that can be media are yielded: known media
extensions, and names without an extension (sniffed later). Nothing here reads file contents.

What the walk could not see matters as much as what it found: a folder that cannot be listed
(missing, permission denied, an I/O error) is reported as a `WalkProblem` with `folder=True`, and
the indexer treats it as offline: the files it held stay in the library. A single entry that cannot
be stat'ed (a dangling link) is a plain problem: it is not a file any more.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec

from lbsearch.catalog import FileIdentity
from lbsearch.media import AUDIO_EXTS, IMAGE_EXTS, VIDEO_EXTS

IGNORE_FILE = ".lbsearchignore"
MEDIA_EXTS = frozenset(IMAGE_EXTS) | frozenset(VIDEO_EXTS) | frozenset(AUDIO_EXTS) | {"npy"}


@dataclass(frozen=True)
class WalkOptions:
    include_hidden: bool = False
    excludes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FoundFile:
    path: Path  # absolute, as reached (through links, not resolved)
    root: Path
    size: int
    mtime_ns: int
    ctime_ns: int | None = None
    dev: int | None = None
    ino: int | None = None

    @classmethod
    def of(cls, path: Path, root: Path, st: os.stat_result) -> FoundFile:
        return cls(path, root, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino)

    @property
    def identity(self) -> FileIdentity:
        return FileIdentity(self.size, self.mtime_ns, self.ctime_ns, self.dev, self.ino)


@dataclass(frozen=True)
class WalkProblem:
    """A folder or entry that could not be read; reported, never fatal. `folder`: a folder
    that could not be listed (its catalogued files must be kept: it is offline)."""

    path: Path
    detail: str
    folder: bool = False
    root: Path | None = None


@dataclass(frozen=True)
class EmptyFolder:
    """A folder that was listed and held nothing: an unmounted drive's mount point looks like
    this, so the indexer keeps what the catalog holds under it (see the module docstring)."""

    path: Path
    root: Path


@dataclass(frozen=True)
class _Rules:
    base: Path
    spec: pathspec.PathSpec


WalkItem = FoundFile | WalkProblem | EmptyFolder


def walk(roots: Sequence[Path], options: WalkOptions) -> Iterator[WalkItem]:
    excludes = pathspec.GitIgnoreSpec.from_lines(options.excludes)
    seen_dirs: set[tuple[int, int]] = set()
    for root in roots:
        root = Path(os.path.abspath(root))  # noqa: PTH100 - keep links as the user named them
        if root.is_file():
            yield from _single(root)
            continue
        yield from _walk_dir(root, root, [], excludes, options, seen_dirs)


def _single(path: Path) -> Iterator[WalkItem]:
    try:
        st = path.stat()
    except OSError as exc:
        yield WalkProblem(path, exc.strerror or str(exc))
        return
    yield FoundFile.of(path, path.parent, st)


def _walk_dir(
    root: Path,
    folder: Path,
    rules: list[_Rules],
    excludes: pathspec.PathSpec,
    options: WalkOptions,
    seen_dirs: set[tuple[int, int]],
) -> Iterator[WalkItem]:
    try:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen_dirs:
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        yield WalkProblem(folder, f"cannot list: {exc.strerror or exc}", folder=True, root=root)
        return
    if not entries:
        yield EmptyFolder(folder, root)
        return
    rules = rules + _load_rules(folder)
    for entry in entries:
        yield from _visit(root, Path(entry.path), rules, excludes, options, seen_dirs)


def _visit(
    root: Path,
    path: Path,
    rules: list[_Rules],
    excludes: pathspec.PathSpec,
    options: WalkOptions,
    seen_dirs: set[tuple[int, int]],
) -> Iterator[WalkItem]:
    if path.name.startswith(".") and not options.include_hidden:
        return
    try:
        st = path.stat()  # follows links; a dangling link raises
    except FileNotFoundError as exc:  # a dangling link: there is no file here any more
        yield WalkProblem(path, f"cannot stat: {exc.strerror or exc}")
        return
    except OSError as exc:  # an I/O or permission error: what is behind it may still exist
        yield WalkProblem(path, f"cannot stat: {exc.strerror or exc}", folder=True, root=root)
        return
    is_dir = stat.S_ISDIR(st.st_mode)
    if _ignored(root, path, is_dir, rules, excludes):
        return
    if is_dir:
        yield from _walk_dir(root, path, rules, excludes, options, seen_dirs)
    elif _may_be_media(path.name):
        # FIFOs and devices are yielded too: the decoder refuses them with a recorded reason.
        yield FoundFile.of(path, root, st)


def _may_be_media(name: str) -> bool:
    stem, dot, ext = name.rpartition(".")
    return not dot or not stem or ext.lower() in MEDIA_EXTS


def _ignored(
    root: Path, path: Path, is_dir: bool, rules: list[_Rules], excludes: pathspec.PathSpec
) -> bool:
    suffix = "/" if is_dir else ""
    relative = path.relative_to(root).as_posix() + suffix
    if excludes.match_file(relative) or excludes.match_file(path.name + suffix):
        return True
    ignored = False
    for rule in rules:  # deeper files override shallower ones, as in git
        result = rule.spec.check_file(path.relative_to(rule.base).as_posix() + suffix)
        if result.include is not None:
            ignored = bool(result.include)
    return ignored


def _load_rules(folder: Path) -> list[_Rules]:
    ignore_file = folder / IGNORE_FILE
    try:
        lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [_Rules(folder, pathspec.GitIgnoreSpec.from_lines(lines))]
