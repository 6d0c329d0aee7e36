"""The search engine: text -> any and file -> any search over a library, rolled up to files.

For every modality searched, a query's terms become one vector, normalise(sum(w_i * v_i)): a
text is embedded with the text tower of that modality's checkpoint, an example file as
examples.py says. Each modality's index returns its best segments, filtered inside FAISS by the
query's `SegmentFilter`; segments roll up to files (the best segment wins and carries its time
span) and the modalities merge into one ranking by calibrated relevance (relevance.py: FAISS
scores cosine - alpha x bias, each modality's null distribution maps that to one scale), or by
raw cosine with `order="score"`. A file met in two modalities (a video's frames and its sound
track) keeps its best hit. The cut-off then keeps the strong results (scoring.py). Example files
never come back as hits. The engine reads the library only through `Library`'s methods.
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..catalog.records import SegmentFilter
from ..config import Config
from ..errors import UsageError
from ..types import Modality
from ..vectors.kinds import BiasKind
from .calibration import install_banks
from .examples import example_vector, excluded_paths, is_excluded, sound_track_vector
from .explain import explain_no_match
from .moments import Match, stream_modalities
from .query import Hit, Query, Term, check_query, segment_filter
from .ranking import (
    Candidates,
    best_per_file,
    best_segments,
    hit_of,
    hits,
    no_candidates,
    ranked,
)
from .scoring import apply_cut_off, rank_key, ranks_by_score, scored, shown, with_relevance
from .streams import TIMED, Scorer, both_settled, file_windows, fused_hit, with_moments

if TYPE_CHECKING:
    from ..embedder import Embedder
    from ..library import Library

_MIN_FETCH = 64  # segments asked of an index at first; grows x4 until `limit` files are found


class SearchEngine:
    """Searches one open library with one embedder (its towers load on first need and stay).

    Searches from several threads (a web server's workers) take turns: one runs at a time."""

    def __init__(self, library: Library, config: Config, embedder: Embedder) -> None:
        self.library = library
        self.config = config
        self.embedder = embedder
        self._lock = threading.Lock()
        self._banks_checked: set[Modality] = set()
        self._per_file: dict[Modality, float] = {}  # best segments a file took, last search

    def indexed_modalities(self) -> tuple[Modality, ...]:
        """Modalities with at least one segment in the library, in Modality order."""
        return tuple(self._sizes())

    def explain_no_match(self, query: Query) -> str:
        """Why `query` found nothing (an empty library, missing modalities, filters)."""
        return explain_no_match(query, self.indexed_modalities(), self.library.root)

    def similar(
        self, path: str | Path, *, modalities: tuple[Modality, ...] = (), limit: int = 20
    ) -> list[Hit]:
        """Files like `path` (indexed or not) in every modality asked; `path` itself excluded."""
        return self.search(Query((Term(file=Path(path)),), modalities=modalities, limit=limit))

    def search(self, query: Query) -> list[Hit]:
        """The best `query.limit` files for the query, best first."""
        check_query(query)
        with self._lock:
            return self._search(query)

    def prepare(self, query: Query) -> None:
        """Load what searching `query` will read first: its modalities' banks and indices. For
        a caller that waits for the query's text anyway (a cold `lbsearch query` encodes it on
        another thread): loaded lazily, they came after the text, ~0.1 s of a cold query at
        10k segments on 2 cores (importing faiss, reading the indices and banks)."""
        with self._lock:
            targets = self._targets(query, self._sizes())
            self._check_banks(targets)
            for modality in targets:
                self.library.index_size(modality)

    def _targets(
        self, query: Query, sizes: dict[Modality, tuple[int, int]]
    ) -> dict[Modality, tuple[int, int]]:
        """The indexed modalities `query` searches (its --modality, its --match's streams)."""
        streams = stream_modalities(query.match)
        return {
            m: s
            for m, s in sizes.items()
            if (not query.modalities or m in query.modalities) and (streams is None or m in streams)
        }

    def _search(self, query: Query) -> list[Hit]:
        sizes = self._sizes()
        targets = self._targets(query, sizes)
        if not targets:
            return []
        self._check_banks(targets)
        vectors = self._query_vectors(query.terms, {m: dim for m, (dim, _) in targets.items()})
        excluded = excluded_paths(query.examples)
        where = segment_filter(query)
        settings = self.config.relevance
        alpha = settings.alpha if query.order == "relevance" else 0.0  # what FAISS ranks by
        has_text = any(t.text is not None for t in query.terms)
        scorer = Scorer(self.library, vectors, alpha, settings.alpha, has_text)
        # One read transaction for the look-ups that follow (begun at the first read, after the
        # texts are encoded): they see one state of the library and pay for one BEGIN
        with self.library.snapshot():
            if query.match is not Match.BOTH:
                found = self._shown(vectors, where, excluded, scorer, query)
                return self._with_moments(found, scorer, query, sizes)
            # --match both: ranked by the best window where both streams match, fused first
            best = self._both(vectors, where, excluded, scorer, query)
        by_score = ranks_by_score(query, best)
        ordered = sorted(best, key=lambda h: (-rank_key(h, by_score), h.path, h.start_s))
        if query.min_score is not None:
            ordered = [h for h in ordered if h.score >= query.min_score]
        return apply_cut_off(ordered, query, settings)[: query.limit]

    def _shown(
        self,
        vectors: dict[Modality, np.ndarray],
        where: SegmentFilter,
        excluded: frozenset[str],
        scorer: Scorer,
        query: Query,
    ) -> list[Hit]:
        """The files shown: each modality's best segment per file, scored; each file's best
        over the modalities; ranked, filtered, cut off; `Hit`s made for those only
        (ranking.py)."""
        want = query.limit + len(excluded)
        parts = []
        for modality, vector in vectors.items():
            alpha = scorer.searched_alpha
            found = self._search_modality(
                modality, vector, where, want, excluded, alpha, scorer.bias
            )
            if len(found):
                raw, relevance = scored(
                    self.library, modality, found.segment_ids, found.scores, vector,
                    alpha, scorer.alpha, scorer.has_text,
                )  # fmt: skip
                parts.append(found.scored(raw, relevance))
        order = ranked(best_per_file(Candidates.joined(parts), query.order), query.order)
        if query.min_score is not None:
            order = order.take(order.scores >= query.min_score)
        keep, weak = shown(order.relevance, query, self.config.relevance)
        return hits(self.library, order.take(np.flatnonzero(keep)[: query.limit]), weak)

    def _best_per_file(self, found: list[tuple[int, Hit]], query: Query) -> list[Hit]:
        """Each file's best hit over the modalities searched (a video's frames or sound)."""
        by_score = ranks_by_score(query, [hit for _, hit in found])
        best: dict[int, Hit] = {}
        for file_id, hit in found:
            if file_id not in best or rank_key(hit, by_score) > rank_key(best[file_id], by_score):
                best[file_id] = hit
        return list(best.values())

    def _both(
        self,
        vectors: dict[Modality, np.ndarray],
        where: SegmentFilter,
        excluded: frozenset[str],
        scorer: Scorer,
        query: Query,
    ) -> list[Hit]:
        """`--match both`, exact (the threshold algorithm): the files in the best k segments of
        either stream are fused; a file in neither fuses to at most the fusion of the two k-th
        scores (streams.both_settled). Once `limit` fused files reach that, stop; else double k,
        up to every segment."""
        k = max(_MIN_FETCH, 8 * query.limit)
        while True:
            found: list[tuple[int, Hit]] = []
            thresholds: dict[Modality, float | None] = {}
            for modality, vector in vectors.items():
                alpha = scorer.searched_alpha
                hits, thresholds[modality] = self._top_segments(
                    modality, vector, where, k, excluded, alpha, scorer.bias
                )
                found += with_relevance(
                    self.library, modality, hits, vector, alpha, scorer.alpha, scorer.has_text
                ).items()
            fused = self._fused(self._best_per_file(found, query), scorer, query)
            if both_settled(scorer, fused, thresholds, query):
                return fused
            k *= 2

    def _top_segments(
        self,
        modality: Modality,
        vector: np.ndarray,
        where: SegmentFilter,
        k: int,
        excluded: frozenset[str],
        alpha: float,
        bias: BiasKind,
    ) -> tuple[dict[int, Hit], float | None]:
        """The files of the best `k` segments, and the k-th score (None: none are left)."""
        size = self.library.index_size(modality)
        if size == 0:
            return {}, None
        result = self.library.search(
            modality, vector[None, :], min(k, size), where=where, alpha=alpha, bias=bias
        )
        ids, scores = result.ids[0], result.scores[0]
        found = ids >= 0
        hits = self._roll_up(ids[found], scores[found], excluded)
        last = None if k >= size or not found.all() or not found.any() else float(scores[-1])
        return hits, last

    def _fused(self, hits: list[Hit], scorer: Scorer, query: Query) -> list[Hit]:
        """`--match both`: each video's hit re-scored by its best window with both streams;
        files without such a window (pictures, audio files, silent videos) drop out."""
        windows = file_windows(scorer, hits)
        fused = (
            fused_hit(h, windows[h.path], query.match, query.moments, query.order)
            for h in hits
            if h.path in windows
        )
        return [h for h in fused if h is not None]

    def _with_moments(
        self, hits: list[Hit], scorer: Scorer, query: Query, sizes: dict[Modality, tuple[int, int]]
    ) -> list[Hit]:
        """Videos and audio files get their best moments (`query.moments` of them). Both
        streams of a video are scored, also the one a modality filter or match mode left out
        of the ranking: a moment reports each stream's score (the mode decides the fusion)."""
        timed = [h for h in hits if h.modality in TIMED]
        if query.moments <= 0 or not timed:
            return hits
        missing = {m: sizes[m] for m in TIMED if m in sizes and m not in scorer.query_vectors}
        if missing:
            self._check_banks(missing)
            more = self._query_vectors(query.terms, {m: dim for m, (dim, _) in missing.items()})
            scorer = replace(scorer, query_vectors={**scorer.query_vectors, **more})
        windows = file_windows(scorer, timed)
        return [
            with_moments(h, windows.get(h.path), query.match, query.moments, query.order)
            for h in hits
        ]

    def _check_banks(self, targets: dict[Modality, tuple[int, int]]) -> None:
        """Once per engine and modality: give the library the current reference bank where
        its index was built with another (a reader then rebuilds the index in memory)."""
        if set(targets) - self._banks_checked:
            install_banks(self.library, self.embedder, self.config.relevance)
            self._banks_checked.update(targets)

    def _sizes(self) -> dict[Modality, tuple[int, int]]:
        """(vector dimension, segment count) of each indexed modality (one catalog read). The
        counts say which modalities to search, never how far: an indexer may commit before the
        index is loaded, and the index searched is what bounds k."""
        states = self.library.modality_states()
        found = {m: states[m] for m in Modality if m in states}
        return {m: (s.dim or 0, s.segment_count) for m, s in found.items() if s.segment_count}

    # ------------------------------------------------------------------------ query vectors

    def _query_vectors(
        self, terms: tuple[Term, ...], targets: dict[Modality, int]
    ) -> dict[Modality, np.ndarray]:
        """One unit query vector per target modality whose index dimension fits every term."""
        files = [(t.weight, self.file_vector(t.file)[1]) for t in terms if t.file is not None]
        sounds = self._sound_tracks(terms) if Modality.AUDIO in targets else []
        texts = [t for t in terms if t.text is not None]
        vectors: dict[Modality, np.ndarray] = {}
        for modality, dim in targets.items():
            parts = list(sounds if modality is Modality.AUDIO else files)
            if texts:
                encoded = self.embedder.embed_texts(modality, [t.text or "" for t in texts])
                parts += [(t.weight, v) for t, v in zip(texts, encoded, strict=True)]
            if any(len(v) != dim for _, v in parts):
                continue  # an example from a model of another size cannot search this index
            vectors[modality] = _combine(parts)
        return vectors

    def _sound_tracks(self, terms: tuple[Term, ...]) -> list[tuple[float, np.ndarray]]:
        """The example files' vectors for searching sound windows: a video example's sound
        track where it has one (its picture searches the picture windows), else its vector."""
        parts = []
        for term in terms:
            if term.file is not None:
                sound = sound_track_vector(self.library, self.embedder, self.config, term.file)
                vector = self.file_vector(term.file)[1] if sound is None else sound
                parts.append((term.weight, vector))
        return parts

    def file_vector(self, path: Path | str) -> tuple[Modality, np.ndarray]:
        """The example's modality and unit vector (stored if the library holds it unchanged)."""
        return example_vector(self.library, self.embedder, self.config, path)

    # ----------------------------------------------------------------------- index search

    def _search_modality(
        self,
        modality: Modality,
        vector: np.ndarray,
        where: SegmentFilter,
        want: int,
        excluded: frozenset[str],
        alpha: float = 0.0,
        bias: BiasKind = BiasKind.TEXT,
    ) -> Candidates:
        """Each file's best segment, asking the index for more segments until `want` files
        show or the index has no more. k is bounded by the size of the index as it is searched (read
        again after each search: a refresh may swap in a larger one meanwhile)."""
        k = min(self.library.index_size(modality), self._first_k(modality, want))
        while k > 0:
            result = self.library.search(
                modality, vector[None, :], k, where=where, alpha=alpha, bias=bias
            )
            ids, scores = result.ids[0], result.scores[0]
            found = ids >= 0
            best = best_segments(self.library, modality, ids[found], scores[found], excluded)
            if len(best):
                self._per_file[modality] = int(found.sum()) / len(best)
            size = self.library.index_size(modality)
            if len(best) >= want or not found.all() or k >= size:
                return best
            k = min(size, 4 * k)
        return no_candidates()

    def _first_k(self, modality: Modality, want: int) -> int:
        """Segments to ask for at first: `want` files' worth at the segments per file the
        modality's last search met, and a quarter more (4 per file before any). Every one
        costs a catalog row (random pages of a large table): a picture takes one segment, so
        80 for 20 files read ~60 rows too many; too few only costs another round."""
        per_file = self._per_file.get(modality)
        if per_file is None:
            return max(_MIN_FETCH, 4 * want)
        return max(want + 4, math.ceil(1.25 * want * per_file))

    def _roll_up(
        self, ids: np.ndarray, scores: np.ndarray, excluded: frozenset[str]
    ) -> dict[int, Hit]:
        """Segments (best first) -> the best segment of each file."""
        segments = self.library.segments_by_ids(ids)
        hits: dict[int, Hit] = {}
        for segment_id, score in zip(ids.tolist(), scores.tolist(), strict=True):
            found = segments.get(segment_id)
            if found is None or found.file.id in hits or is_excluded(found.file.path, excluded):
                continue
            hits[found.file.id] = hit_of(found, score)
        return hits


def _combine(parts: list[tuple[float, np.ndarray]]) -> np.ndarray:
    total = np.sum([w * np.asarray(v, dtype=np.float64) for w, v in parts], axis=0)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise UsageError("the query's terms cancel each other out", "change the terms or weights")
    return (total / norm).astype(np.float32)
