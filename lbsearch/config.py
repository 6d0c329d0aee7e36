"""Settings: the packaged defaults (config.toml), overlaid by the user's file, as typed dataclasses."""

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
    image: str = ""
    video: str = ""
    audio: str = ""
    depth: str = ""
    thermal: str = ""

    def for_modality(self, modality: Modality) -> str:
        return str(getattr(self, modality.value))


@dataclass(frozen=True)
class RuntimeConfig:
    backend: str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    attention: str = "auto"
    batch_size: int = 0
    text_batch_size: int = 64
    threads: int = 0


@dataclass(frozen=True)
class MediaConfig:
    decode_timeout_s: float = 120.0
    max_image_pixels: int = 178956970
    max_file_bytes: int = 0
    decode_workers: int = 0


@dataclass(frozen=True)
class VideoConfig:
    segment_seconds: float = 10.0
    max_segments: int = 360
    backend: str = "pyav"
    decode_threads: int = 0
    index_audio_track: bool = True


@dataclass(frozen=True)
class AudioConfig:
    hop_frames: int = 1036
    max_seconds: float = 0


@dataclass(frozen=True)
class ClassifyConfig:
    depth_globs: tuple[str, ...] = ()
    thermal_globs: tuple[str, ...] = ()


@dataclass(frozen=True)
class LibraryConfig:
    path: str = ""
    lock_timeout_s: float = 0.0
    busy_timeout_s: float = 30.0


@dataclass(frozen=True)
class IndexConfig:
    exact_max_segments: int = 100000
    compressed_min_segments: int = 2000000
    nprobe: int = 0
    refine_factor: int = 30
    device: str = "auto"
    threads: int = 0


@dataclass(frozen=True)
class Config:
    models: ModelsConfig = field(default_factory=ModelsConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    library: LibraryConfig = field(default_factory=LibraryConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    sources: tuple[str, ...] = ()


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
