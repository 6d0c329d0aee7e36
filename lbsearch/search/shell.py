"""What every front end (`query`, `browse`, `serve`) shares: a hit's JSON form and the embedder
a library's searches need. Front ends are shells over these; none re-describes a hit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config
    from ..embedder import Embedder
    from ..library import Library
    from .query import Hit


def format_span(hit: Hit) -> str:
    """mm:ss-mm:ss (h:mm:ss past an hour); empty for pictures."""
    if hit.start_s == 0 and hit.end_s == 0:
        return ""
    return format_seconds(hit.start_s, hit.end_s)


def format_seconds(start_s: float, end_s: float) -> str:
    """mm:ss-mm:ss (h:mm:ss past an hour)."""
    return f"{_clock(start_s)}-{_clock(end_s)}"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def hit_json(rank: int, hit: Hit) -> dict[str, Any]:
    """One hit as `lbsearch query --json` prints it and /api/search answers it."""
    return {
        "rank": rank,
        "score": round(hit.score, 6),
        "modality": hit.modality.value,
        "path": hit.path,
        "start_s": hit.start_s,
        "end_s": hit.end_s,
        "span": format_span(hit),
        "segment_id": hit.segment_id,
        "duration_s": hit.duration_s,
        "size": hit.size,
        "mtime": hit.mtime,
        "offline": hit.offline,
        "relevance": None if hit.relevance is None else round(hit.relevance, 4),
        "weak": hit.weak,
        "moments": [_rounded(m.to_json()) for m in hit.moments],
    }


def _rounded(fields: dict[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else round(v, 6) for k, v in fields.items()}


def library_embedder(
    library: Library,
    config: Config,
    *,
    backend: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> Embedder:
    """The embedder on the checkpoints `library` was indexed with (each modality's own)."""
    from ..embedder import open_embedder

    models = {m: s.model_id for m, s in library.modality_states().items()}
    return open_embedder(config, models=models, backend=backend, device=device, dtype=dtype)
