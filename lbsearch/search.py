"""The query engine: text -> any and file -> any search over a library, rolled up to files.

A `Query` is a weighted sum of terms (texts and example files; a negative weight is a "not").
For every modality searched, the terms become one query vector, normalise(sum(w_i * v_i)): a
text is encoded with the text tower of the checkpoint that modality was indexed with (identical
towers once), an example file by its own modality's encoder (or, when the library holds it
unchanged, from its stored vectors, so no tower loads). Each modality's index returns its best
segments, filtered inside FAISS by the query's `SegmentFilter`; segments roll up to files (the
best segment wins and carries its time span) and the modalities merge into one ranking by cosine
similarity. A file met in two modalities (a video's frames and its sound track) keeps its best
hit. Example files never come back as hits.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .catalog.records import FileRecord, FileStatus, SegmentFilter, SegmentHit
from .config import Config
from .errors import UsageError
from .types import Modality

if TYPE_CHECKING:
    from .embedder import Embedder
    from .library import Library

_MIN_FETCH = 64  # segments asked of an index at first; grows x4 until `limit` files are found
_WEIGHT = re.compile(r"^(?P<body>.*\S)\s*:\s*(?P<weight>[-+]?(\d+(\.\d*)?|\.\d+))$", re.DOTALL)


@dataclass(frozen=True)
class Hit:
    """One file found: the segment that matched best (its modality's index, time span, id)."""

    path: str
    modality: Modality
    score: float
    start_s: float
    end_s: float
    segment_id: int
    duration_s: float | None
    size: int
    mtime: float


@dataclass(frozen=True)
class Term:
    """A text or an example file with a weight; a negative weight pushes matches away."""

    text: str | None = None
    file: Path | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...]
    modalities: tuple[Modality, ...] = ()  # empty: every indexed modality
    path_globs: tuple[str, ...] = ()
    after: float | None = None  # file mtime, Unix seconds
    before: float | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    limit: int = 20
    min_score: float | None = None


class SearchEngine:
    """Searches one open library. Encoders load on first need and stay loaded (warm)."""

    def __init__(self, library: Library, config: Config, encoders: Embedder | None = None) -> None:
        self.library = library
        self.config = config
        self._encoders = encoders
        self._lock = threading.Lock()

    @property
    def encoders(self) -> Embedder:
        """The embedder on the checkpoints the library was indexed with (loaded on first use)."""
        with self._lock:
            if self._encoders is None:
                from .embedder import open_embedder

                states = self.library.catalog.modality_states()
                models = {m: s.model_id for m, s in states.items()}
                self._encoders = open_embedder(self.config, models=models)
            return self._encoders

    def indexed_modalities(self) -> tuple[Modality, ...]:
        """Modalities with at least one segment in the library, in Modality order."""
        return tuple(self._dims())

    def _dims(self) -> dict[Modality, int]:
        """Each indexed modality's vector dimension (one catalog read)."""
        states = self.library.catalog.modality_states()
        found = {m: states[m] for m in Modality if m in states}
        return {m: s.dim or 0 for m, s in found.items() if s.segment_count > 0}

    def similar(
        self, path: str | Path, *, modalities: tuple[Modality, ...] = (), limit: int = 20
    ) -> list[Hit]:
        """Files like `path` (indexed or not) in every modality asked; `path` itself excluded."""
        return self.search(Query((Term(file=Path(path)),), modalities=modalities, limit=limit))

    def search(self, query: Query) -> list[Hit]:
        """The best `query.limit` files for the query, best first."""
        check_query(query)
        dims = self._dims()
        targets = {m: d for m, d in dims.items() if not query.modalities or m in query.modalities}
        if not targets:
            return []
        vectors = self._query_vectors(query.terms, targets)
        excluded = _excluded_paths(query.terms)
        where = segment_filter(query)
        best: dict[int, Hit] = {}
        for modality, vector in vectors.items():
            for file_id, hit in self._search_modality(
                modality, vector, where, query.limit + len(excluded), excluded
            ).items():
                if file_id not in best or hit.score > best[file_id].score:
                    best[file_id] = hit
        ranked = sorted(best.values(), key=lambda h: (-h.score, h.path, h.start_s))
        if query.min_score is not None:
            ranked = [h for h in ranked if h.score >= query.min_score]
        return ranked[: query.limit]

    # ------------------------------------------------------------------------ query vectors

    def _query_vectors(
        self, terms: tuple[Term, ...], targets: dict[Modality, int]
    ) -> dict[Modality, np.ndarray]:
        """One unit query vector per target modality whose index dimension fits every term."""
        files = [(t.weight, self.file_vector(t.file)[1]) for t in terms if t.file is not None]
        texts = [t for t in terms if t.text is not None]
        vectors: dict[Modality, np.ndarray] = {}
        for modality, dim in targets.items():
            parts = list(files)
            if texts:
                encoded = self.encoders.embed_texts(modality, [t.text or "" for t in texts])
                parts += [(t.weight, v) for t, v in zip(texts, encoded, strict=True)]
            if any(len(v) != dim for _, v in parts):
                continue  # an example from a model of another size cannot search this index
            vectors[modality] = _combine(parts)
        return vectors

    def file_vector(self, path: Path | str) -> tuple[Modality, np.ndarray]:
        """The example's stored vectors if the library holds it unchanged, else encoded."""
        absolute = Path(os.path.abspath(Path(path).expanduser()))  # noqa: PTH100 - keep links
        stored = self._stored_vector(absolute)
        if stored is not None:
            return stored
        if not absolute.exists():
            raise UsageError(f"{path}: no such file", "check the path given to --like")
        return self._encoded_example(absolute)

    def _encoded_example(self, path: Path) -> tuple[Modality, np.ndarray]:
        """An example file not in the library: classified, decoded (within the time limit) and
        embedded by its modality's tower; its segments' mean stands for it."""
        from .media import classify
        from .media.timed import decode_in_time

        modality = classify(path, self.config.classify)
        segments = decode_in_time(path, self.encoders.media_spec(modality), self.config)
        vectors = self.encoders.embed_segments(modality, segments)
        return modality, _unit(vectors.astype(np.float64).mean(axis=0))

    def _stored_vector(self, path: Path) -> tuple[Modality, np.ndarray] | None:
        catalog = self.library.catalog
        record = catalog.file_by_path(str(path))
        if not _reusable(record, path):
            return None
        assert record is not None and record.modality and record.content_hash
        state = catalog.modality_state(record.modality)
        if state is None:
            return None
        stored = catalog.segments_for_hash(record.content_hash, record.modality, state.model_id)
        if not stored:
            return None
        mean = np.mean([s.vector for s in stored], axis=0)
        return record.modality, _unit(mean)

    # ----------------------------------------------------------------------- index search

    def _search_modality(
        self,
        modality: Modality,
        vector: np.ndarray,
        where: SegmentFilter,
        want: int,
        excluded: frozenset[str],
    ) -> dict[int, Hit]:
        """Best hit per file id, asking the index for more segments until `want` files show."""
        index = self.library.vectors.index(modality)
        total = index.ntotal if index is not None else 0
        k = min(total, max(_MIN_FETCH, 4 * want))
        while k > 0:
            result = self.library.search(modality, vector[None, :], k, where=where)
            ids, scores = result.ids[0], result.scores[0]
            found = ids >= 0
            hits = self._roll_up(ids[found], scores[found], excluded)
            if len(hits) >= want or not found.all() or k >= total:
                return hits
            k = min(total, 4 * k)
        return {}

    def _roll_up(
        self, ids: np.ndarray, scores: np.ndarray, excluded: frozenset[str]
    ) -> dict[int, Hit]:
        """Segments (best first) -> the best segment of each file."""
        segments = self.library.catalog.segments_by_ids(ids)
        hits: dict[int, Hit] = {}
        for segment_id, score in zip(ids.tolist(), scores.tolist(), strict=True):
            found = segments.get(segment_id)
            if found is None or found.file.id in hits or _is_excluded(found.file.path, excluded):
                continue
            hits[found.file.id] = _hit(found, score)
        return hits


# ------------------------------------------------------------------------------- helpers


def check_query(query: Query) -> None:
    """UsageError for a query that cannot run (no terms, empty text, zero weight, bad limit)."""
    if not query.terms:
        raise UsageError("nothing to search for", "give a TEXT, or an example file with --like")
    for term in query.terms:
        if (term.text is None) == (term.file is None):
            raise UsageError("a query term is a text or a file, not both or neither")
        if term.text is not None and not term.text.strip():
            raise UsageError("an empty text cannot be searched for", "give some words")
        if term.weight == 0 or not np.isfinite(term.weight):
            raise UsageError(f"term weight {term.weight} is not usable", "use a non-zero number")
    if not any(t.weight > 0 for t in query.terms):
        raise UsageError("every term is negative", "add something to look for, not only --not")
    if query.limit < 1:
        raise UsageError(f"--limit {query.limit} is less than 1", "ask for at least one result")


def segment_filter(query: Query) -> SegmentFilter:
    return SegmentFilter(
        path_globs=tuple(normalise_glob(g) for g in query.path_globs),
        modified_after=query.after,
        modified_before=query.before,
        min_duration_s=query.min_duration_s,
        max_duration_s=query.max_duration_s,
    )


def normalise_glob(pattern: str) -> str:
    """A user's --path glob as a glob on absolute paths (`*` also crosses `/`).

    Absolute patterns and those starting with `*` stay; `~` expands; `./x` and `../x` are taken
    from the current folder; any other relative pattern matches at any depth (`photos/*` is
    `*/photos/*`).
    """
    pattern = os.path.expanduser(pattern)  # noqa: PTH111 - a glob: keep it a string
    if pattern.startswith(("/", "*")):
        return pattern
    if pattern.startswith(("./", "../")):
        return os.path.abspath(pattern)  # noqa: PTH100 - a glob, not a path to resolve
    return "*/" + pattern


def parse_date(text: str) -> float:
    """Unix seconds of an ISO date or datetime (2024-05-01, 2024-05-01T14:30, ...+02:00).

    Dates without a time are midnight; times without a zone are local time.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{text!r} is not a date",
            "use an ISO date like 2024-05-01 or a date and time like 2024-05-01T14:30",
        ) from None
    return moment.timestamp()


def parse_weighted(text: str) -> tuple[str, float]:
    """Split a trailing `:WEIGHT` off a term: "dog:2" -> ("dog", 2.0); "dog" -> ("dog", 1.0).

    To search for a text that itself ends in `:NUMBER`, add a weight: "10:30:1".
    """
    match = _WEIGHT.match(text)
    if match is None:
        return text, 1.0
    return match["body"], float(match["weight"])


def _combine(parts: list[tuple[float, np.ndarray]]) -> np.ndarray:
    total = np.sum([w * np.asarray(v, dtype=np.float64) for w, v in parts], axis=0)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise UsageError("the query's terms cancel each other out", "change the terms or weights")
    return (total / norm).astype(np.float32)


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return (vector / (np.linalg.norm(vector) or 1.0)).astype(np.float32)


def _reusable(record: FileRecord | None, path: Path) -> bool:
    if record is None or record.status is not FileStatus.INDEXED:
        return False
    if not (record.modality and record.content_hash):
        return False
    try:
        return record.unchanged(path.stat())
    except FileNotFoundError:
        return True  # gone since indexing: what the library holds is all there is
    except OSError:
        return False


def _excluded_paths(terms: tuple[Term, ...]) -> frozenset[str]:
    """Each example file as given (absolute) and with its links resolved."""
    paths: set[str] = set()
    for term in terms:
        if term.file is not None:
            absolute = os.path.abspath(os.path.expanduser(term.file))  # noqa: PTH100, PTH111
            paths |= {absolute, os.path.realpath(absolute)}
    return frozenset(paths)


def _is_excluded(path: str, excluded: frozenset[str]) -> bool:
    return bool(excluded) and (path in excluded or os.path.realpath(path) in excluded)


def _hit(found: SegmentHit, score: float) -> Hit:
    segment, file = found.segment, found.file
    return Hit(
        path=file.path,
        modality=segment.modality,
        score=float(score),
        start_s=segment.start_s,
        end_s=segment.end_s,
        segment_id=segment.id,
        duration_s=file.duration_s,
        size=file.size,
        mtime=file.mtime_ns / 1e9,
    )
