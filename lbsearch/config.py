"""Settings: typed dataclasses whose defaults are those of the packaged config.toml.

The dataclasses are the settings' schema and defaults; `config.toml` (packaged as
`lbsearch/defaults.toml`) is the same defaults written out for people, with a comment per key.
A test proves the two agree (`Config()` equals the settings loaded from the packaged file), so
code that builds `Config()` and a user who reads config.toml see the same values.
Loading: the packaged defaults, overlaid key by key by the user's file ($LBSEARCH_CONFIG, else
config.toml in the platform's user config folder, or the `path` given).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .types import Modality

CONFIG_ENV = "LBSEARCH_CONFIG"


@dataclass(frozen=True)
class ModelsConfig:
    """The checkpoint each modality is embedded with: a Hugging Face repo id or a local folder."""

    image: str = "LanguageBind/LanguageBind_Image"
    """Images (RGB pictures of any format Pillow reads)."""
    video: str = "LanguageBind/LanguageBind_Video_FT"
    """Video windows (8 frames each). The Huge V1.5 model is 1024-d and cannot mix with 768-d."""
    audio: str = "LanguageBind/LanguageBind_Audio_FT"
    """Audio windows, and the sound tracks of videos."""
    depth: str = "LanguageBind/LanguageBind_Depth"
    """Depth maps (chosen by `[classify] depth_globs` or `--as depth`)."""
    thermal: str = "LanguageBind/LanguageBind_Thermal"
    """Thermal/infrared pictures (chosen by `[classify] thermal_globs` or `--as thermal`)."""

    def for_modality(self, modality: Modality) -> str:
        return str(getattr(self, modality.value))


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the encoders run."""

    backend: str = "auto"
    """"torch", "onnxruntime" (CPU) or "auto" (measured for media towers; ONNX Runtime for the
    text tower on a machine without a GPU unless `lbsearch models --tune` measured otherwise)."""
    device: str = "auto"
    """"auto" (cuda, then mps, then cpu) or a torch device name: "cpu", "cuda:1", "mps"."""
    dtype: str = "auto"
    """"auto" (measured: the fastest faithful dtype on this machine, see lbsearch.embedder.tuner)
    or "float32", "bfloat16", "float16", "int8" (ONNX Runtime media towers only)."""
    attention: str = "auto"
    """Attention kernel: "auto" (chosen per device and dtype), "eager" or "sdpa"."""
    batch_size: int = 0
    """Segments per encoder call; 0 picks 8 on a CPU and 32 on a GPU."""
    text_batch_size: int = 64
    """Texts per text-tower call."""
    threads: int = 0
    """CPU threads for the towers (torch and ONNX Runtime); 0 keeps their default."""
    int8: str = "deny"
    """"allow": measured "auto" may choose ONNX Runtime int8 weights (cosine >= 0.998 to
    float32); "deny" keeps it to float dtypes (cosine >= 0.9999)."""


@dataclass(frozen=True)
class MediaConfig:
    """Limits on decoding one file, and the decode worker pool."""

    decode_timeout_s: float = 120.0
    """Seconds one file may take to decode before it is skipped as "decode_timeout"."""
    max_image_pixels: int = 178956970
    """Pictures with more pixels are refused as decompression bombs."""
    max_file_bytes: int = 0
    """Larger files are skipped; 0: no limit."""
    decode_workers: int = 0
    """Decoding processes; 0 picks half the CPU cores (1 to 8)."""
    max_worker_memory_mb: int = 4096
    """Data memory one decoding process may hold (MB); past it the file fails as
    "out_of_memory". 0: no limit."""


@dataclass(frozen=True)
class VideoConfig:
    """How videos become windows."""

    segment_seconds: float = 10.0
    """Length of one window (8 frames spread across it); a short last window joins the previous."""
    max_segments: int = 360
    """Windows per video at most, spread evenly over very long videos."""
    backend: str = "pyav"
    """Decoder: "pyav" or "decord" (an optional extra); both give the same frames."""
    decode_threads: int = 0
    """FFmpeg decoder threads per video; 0 lets FFmpeg decide."""
    index_audio_track: bool = True
    """Also index each video's sound track as audio segments."""


@dataclass(frozen=True)
class AudioConfig:
    """How audio becomes windows."""

    hop_frames: int = 1036
    """Hop between windows in fbank frames (1036 = one ~10.4 s window: no overlap)."""
    max_seconds: float = 0.0
    """Longest audio decoded per file, in seconds; 0: no limit."""


@dataclass(frozen=True)
class ClassifyConfig:
    """Which pictures are depth maps or thermal images (path globs, case-insensitive)."""

    depth_globs: tuple[str, ...] = (
        "**/depth/**",
        "*_depth.png",
        "*_depth.tif",
        "*_depth.tiff",
        "*.depth.png",
        "*_depth.npy",
        "*.npy",
    )
    """Globs matched against the path under the indexed root and against the file name."""
    thermal_globs: tuple[str, ...] = ("**/thermal/**", "**/infrared/**", "*_thermal.*", "*_ir.*")
    """Globs matched against the path under the indexed root and against the file name."""


@dataclass(frozen=True)
class LibraryConfig:
    """Where the library is and how long its users wait for each other."""

    path: str = ""
    """The library folder; empty: $LBSEARCH_HOME, else the platform's data folder."""
    lock_timeout_s: float = 0.0
    """Seconds `lbsearch index` waits for another indexer; 0 fails at once, naming it."""
    busy_timeout_s: float = 30.0
    """Seconds a catalog statement waits for a busy database (SQLite busy_timeout)."""


@dataclass(frozen=True)
class IndexConfig:
    """The vector indices: exact or approximate search, and where FAISS runs."""

    exact_max_segments: int = 10000
    """Exact search up to this many segments per modality; an IVF index past it."""
    compressed_min_segments: int = 2000000
    """From this many segments on, vectors are compressed (IVF-PQ) and candidates re-scored."""
    nprobe: int = 0
    """IVF lists scanned per query; 0 picks nlist/32 (at least 32)."""
    refine_factor: int = 30
    """IVF-PQ: k x refine_factor candidates are re-scored exactly."""
    device: str = "auto"
    """"auto" searches on a GPU when faiss has CUDA and sees one; "cpu" never does; "gpu" must;
    "gpu:N" names the GPU (default: [runtime] device's "cuda:N", else 0)."""
    threads: int = 0
    """FAISS threads; 0 keeps its default (one per core)."""
    nice: int = 10
    """Unix niceness `lbsearch index` runs at, at least (0-19): searches on the same cores come
    first; 0 keeps the priority it was started with."""
    ray: str = ""
    """`lbsearch index` on Ray: "" (this machine), "local", "auto" or a cluster address."""
    ray_actors: int = 0
    """Encoder actors per modality on Ray; 0: the GPUs shared out, or one per node."""
    ray_gpus_per_actor: float = 0.0
    """GPUs each encoder actor takes at most on Ray (0: encode on CPUs)."""
    ray_decode_cpus: float = 1.0
    """CPUs each decode task reserves on Ray."""


@dataclass(frozen=True)
class ServeConfig:
    """`lbsearch serve`: limits that keep a long-running service up, and its sessions."""

    thumbnail_cache_mb: int = 256
    """Disk space for cached thumbnails (least recently used removed first)."""
    session_hours: float = 24.0
    """How long a browser's login lasts (a new login cookie each time, HttpOnly)."""
    max_upload_mb: int = 256
    """Largest request body (every file uploaded in it together), checked while it arrives."""
    body_timeout_s: float = 60.0
    """A request body must be complete this many seconds after its head."""
    max_connections: int = 512
    """Open connections in all; past it new ones get 503 at once."""
    max_client_connections: int = 0
    """Open connections from one client address (0: a quarter of max_connections)."""
    max_jobs: int = 8
    """Uploads and embeddings queued or running at once; past it 503 with Retry-After."""
    max_clip_s: float = 60.0
    """Longest clip the page's download (GET /api/files/{id}/clip) cuts, padding included."""


@dataclass(frozen=True)
class RelevanceConfig:
    """Calibrated relevance and the cut-off (README: Relevance; bench/relevance.py)."""

    bank_k: int = 10
    """A segment's hubness bias: the mean of its k best similarities to the reference bank."""
    alpha: float = 1.0
    """Search scores cosine - alpha x bias (0: no hubness correction)."""
    file_sample: int = 1000
    """Example-file queries' bank: this many of the library's own segments (an equal share per
    modality, one per file), drawn once and kept; a segment's file bias is the mean of its
    bank_k best similarities to them. 0: no sample (the next index run deletes a saved one;
    file biases are then 0)."""
    file_sample_growth: float = 4.0
    """The sample is drawn again (every bias recomputed from stored vectors) when the library
    has this many times the segments it had when the sample was drawn (0: never for growth)."""
    min_relevance: float = 2.5
    """The default bar, in standard deviations of the null (what a random query scores)."""
    autocut_gap: float = 1.5
    """The default cut-off also ends at the first drop between consecutive relevances wider than
    this (0: no autocut)."""


@dataclass(frozen=True)
class Config:
    """Every setting, one section per dataclass (the sections of config.toml)."""

    models: ModelsConfig = field(default_factory=ModelsConfig)
    """[models]: the checkpoint per modality."""
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    """[runtime]: device, dtype, batch sizes of the encoders."""
    media: MediaConfig = field(default_factory=MediaConfig)
    """[media]: decoding limits and workers."""
    video: VideoConfig = field(default_factory=VideoConfig)
    """[video]: windows of videos."""
    audio: AudioConfig = field(default_factory=AudioConfig)
    """[audio]: windows of audio."""
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    """[classify]: depth and thermal path globs."""
    library: LibraryConfig = field(default_factory=LibraryConfig)
    """[library]: location and waits."""
    index: IndexConfig = field(default_factory=IndexConfig)
    """[index]: vector index kinds and FAISS."""
    serve: ServeConfig = field(default_factory=ServeConfig)
    """[serve]: limits and sessions of `lbsearch serve`."""
    relevance: RelevanceConfig = field(default_factory=RelevanceConfig)
    """[relevance]: hubness correction, calibration, the cut-off."""
    sources: tuple[str, ...] = ()
    """Where the values came from ("defaults", then the user's file), for `lbsearch config`."""

    def sections(self) -> dict[str, Any]:
        """The settings sections by name, in config.toml's order (every field but `sources`)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sources"}


def default_config_text() -> str:
    """The packaged config.toml, which is also the reference documentation of every key."""
    return resources.files("lbsearch").joinpath("defaults.toml").read_text(encoding="utf-8")


def user_config_path() -> Path:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("lbsearch")) / "config.toml"


def load_config(path: str | Path | None = None) -> Config:
    """Defaults, then the user's file (or `path`), merged key by key."""
    data = tomllib.loads(default_config_text())
    sources = ["defaults"]
    user_path = Path(path).expanduser() if path is not None else user_config_path()
    if path is not None and not user_path.is_file():
        raise ConfigError(f"{user_path}: config file not found", "check the path given")
    if user_path.is_file():
        _merge(data, _read_toml(user_path), str(user_path))
        sources.append(str(user_path))
    return _build(Config, data, "config", tuple(sources))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"{path}: cannot read config: {exc}", "fix the file or remove it"
        ) from exc


def _merge(base: dict[str, Any], override: dict[str, Any], origin: str) -> None:
    for key, value in override.items():
        if key not in base:
            raise ConfigError(
                f"{origin}: unknown setting {key!r}",
                "see the packaged config.toml (`lbsearch config --defaults`) for valid keys",
            )
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: [{key}] must be a table", "write it as a [section]")
            _merge(base[key], value, origin)
        else:
            base[key] = value


def _build(cls: Any, data: dict[str, Any], where: str, sources: tuple[str, ...] = ()) -> Any:
    known = {f.name for f in fields(cls)} - {"sources"}
    unknown = sorted(set(data) - known)
    if unknown:  # only a packaged file out of step with this module gets here (a bug)
        raise ConfigError(
            f"{where}: unknown setting {unknown[0]!r} in the packaged defaults",
            "reinstall lbsearch; config.toml and lbsearch/config.py must list the same keys",
        )
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name == "sources":
            kwargs["sources"] = sources
            continue
        if f.name not in data:
            continue
        value = data[f.name]
        default = f.default_factory() if callable(f.default_factory) else f.default
        if is_dataclass(default):
            kwargs[f.name] = _build(type(default), value, f"{where}.{f.name}")
        else:
            kwargs[f.name] = _coerce(value, default, f"{where}.{f.name}")
    return cls(**kwargs)


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings", 'for example ["*.png"]')
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}", "fix the value")
        return value
    if isinstance(default, int | float) and isinstance(value, int | float):
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, not {value!r}", "fix the value")
        return float(value) if isinstance(default, float) else _int(value, where)
    if isinstance(default, str) and isinstance(value, str):
        return value
    raise ConfigError(
        f"{where} must be a {type(default).__name__}, not {value!r}", "fix the value's type"
    )


def _int(value: float, where: str) -> int:
    if int(value) != value:
        raise ConfigError(f"{where} must be a whole number, not {value!r}", "fix the value")
    return int(value)
