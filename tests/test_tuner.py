"""Measured "auto": the candidates, the choice (with a faked timer, so it is deterministic), the
decision cache, the embedder's first use, `lbsearch models --tune`, and `[runtime] int8`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lbsearch.cli.main import app
from lbsearch.config import load_config
from lbsearch.embedder import EmbedderOptions, LanguageBindEmbedder, tuned_towers, tuner
from lbsearch.embedder.tuner import Candidate, Decision, Machine, Measured
from lbsearch.errors import UsageError
from lbsearch.testing.checkpoints import write_tiny_checkpoint, write_tiny_config
from lbsearch.types import Modality, Segment

T32, TBF16, TF16 = (
    Candidate("torch", "float32"),
    Candidate("torch", "bfloat16"),
    Candidate("torch", "float16"),
)
O32, O8 = Candidate("onnxruntime", "float32"), Candidate("onnxruntime", "int8")
CPU = Machine("cpu", bf16_native=False, name="a CPU")
runner = CliRunner()
CPU_ONLY = {"device": "cpu"}


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


BASE = _unit(np.random.default_rng(0).standard_normal((4, 16)))


def _off_by(cosine: float) -> np.ndarray:
    """BASE turned so that every row has exactly `cosine` to its BASE row."""
    other = np.random.default_rng(1).standard_normal(BASE.shape)
    other -= (other * BASE).sum(axis=1, keepdims=True) * BASE  # orthogonal part
    other = _unit(other)
    return _unit(cosine * BASE + np.sqrt(1 - cosine**2) * other)


class FakeTower:
    def __init__(self, candidate: Candidate, vectors: np.ndarray, seconds: float) -> None:
        self.candidate, self.vectors, self.seconds = candidate, vectors, seconds

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        return self.vectors[: len(batch)]


def fake_timer(tower: Any, batch: Sequence[Any]) -> tuple[np.ndarray, float]:
    return tower.encode(batch), tower.seconds


def _towers(spec: dict[Candidate, tuple[float, float]]) -> dict[Candidate, FakeTower]:
    """candidate -> (cosine to float32, seconds per batch of 4)."""
    return {c: FakeTower(c, _off_by(cos) if cos < 1 else BASE, s) for c, (cos, s) in spec.items()}


# ------------------------------------------------------------------------ the choice


def test_the_fastest_faithful_candidate_wins_and_the_others_are_dropped() -> None:
    towers = _towers(
        {
            T32: (1.0, 4.0),
            TBF16: (0.9995, 1.0),  # fastest, but not the same vectors: 0.9995 < 0.9999
            O32: (0.99999, 2.0),  # the fastest faithful one
            O8: (0.9985, 1.5),  # int8 needs 0.998 only: faithful, and faster still
        }
    )
    table, kept = tuned_towers.measure(list(towers)[:3], towers.__getitem__, [0] * 4, fake_timer)
    assert [m.candidate for m in table] == [T32, TBF16, O32]
    assert [m.faithful for m in table] == [True, False, True]
    assert tuner.choose(table) == O32 and kept is towers[O32]
    assert table[2].items_per_s == pytest.approx(2.0)
    table, kept = tuned_towers.measure(list(towers), towers.__getitem__, [0] * 4, fake_timer)
    assert tuner.choose(table) == O8 and kept is towers[O8]


def test_float32_is_measured_first_and_wins_ties_and_failures_are_recorded() -> None:
    towers = _towers({O32: (1.0, 1.0), T32: (1.0, 1.0)})

    def load(candidate: Candidate) -> FakeTower:
        if candidate == TBF16:
            raise RuntimeError("bf16 kernel missing")
        return towers[candidate]

    table, _ = tuned_towers.measure([TBF16, O32, T32], load, [0] * 4, fake_timer)
    assert [m.candidate for m in table] == [O32, TBF16, T32]  # the reference first
    assert tuner.choose(table) == O32
    assert table[1].error.startswith("RuntimeError") and not table[1].faithful

    def float32_fails(candidate: Candidate) -> FakeTower:
        if candidate == T32:
            raise RuntimeError("out of memory")
        return towers[O32]

    with pytest.raises(RuntimeError):  # without float32 nothing can be verified
        tuned_towers.measure([T32, O32], float32_fails, [0] * 4, fake_timer)


class StallingTower:
    """Its timed runs take `durations` seconds of a fake clock, in turn (the warm-up none)."""

    def __init__(self, durations: Sequence[float]) -> None:
        self.now, self.durations, self.runs = 0.0, list(durations), 0

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        if len(batch) > 1:
            self.now += self.durations[self.runs]
            self.runs += 1
        return BASE[: len(batch)]


def test_a_short_batch_is_timed_again_and_one_stall_does_not_decide() -> None:
    stalled = StallingTower([0.36, 0.2, 0.18, 0.2, 0.19, 5.0])
    vectors, seconds = tuned_towers.time_batch(stalled, [0] * 4, clock=lambda: stalled.now)
    assert seconds == pytest.approx(0.18) and stalled.runs == 5  # best of 5, never a sixth
    assert np.array_equal(vectors, BASE)


def test_a_batch_slower_than_the_budget_is_timed_once() -> None:
    slow = StallingTower([4.0, 0.5])  # a ViT-L media batch on a CPU: measuring costs no more
    _, seconds = tuned_towers.time_batch(slow, [0] * 4, clock=lambda: slow.now)
    assert seconds == 4.0 and slow.runs == 1


@pytest.mark.parametrize(
    ("machine", "settings", "ready", "expected"),
    [
        (CPU, {}, False, [T32]),
        (CPU, {}, True, [T32, O32]),
        (CPU, {"int8": "allow"}, True, [T32, O32, O8]),
        (Machine("cpu", True, "x"), {}, False, [T32, TBF16]),
        (Machine("cpu", True, "x"), {"dtype": "float32"}, True, [T32, O32]),
        (Machine("cpu", True, "x"), {"backend": "torch"}, True, [T32, TBF16]),
        (CPU, {"backend": "onnxruntime", "int8": "allow"}, True, [O32, O8]),
        (Machine("cuda", True, "H100"), {"int8": "allow"}, True, [T32, TF16]),
        (Machine("mps", False, "M2"), {}, True, [T32, TF16]),
    ],
)
def test_candidates_follow_the_machine_and_the_settings(
    machine: Machine, settings: dict[str, str], ready: bool, expected: list[Candidate]
) -> None:
    options = EmbedderOptions(**settings)  # type: ignore[arg-type]
    assert tuner.candidates(options, machine, lambda c: ready) == expected


def test_int8_setting_is_checked_and_read_from_the_config(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="int8") as raised:
        EmbedderOptions(int8="sometimes").check()
    assert raised.value.hint
    config = tmp_path / "config.toml"
    config.write_text('[runtime]\nint8 = "allow"\n', encoding="utf-8")
    runtime = load_config(config).runtime
    assert EmbedderOptions.from_runtime(runtime).int8 == "allow"
    assert EmbedderOptions.from_runtime(load_config().runtime).int8 == "deny"  # the default


def test_decisions_are_cached_per_machine_weights_and_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decision = Decision(O32, (Measured(T32, 1.0, 1.0), Measured(O32, 2.0, 0.99999)), 3.0, "x", 4)
    options = EmbedderOptions()
    key = tuner.decision_key("image", "weights-1", CPU, options)
    tuner.write_decision(key, decision, {"model_id": "m"})
    assert tuner.read_decision(key) == decision
    others = [
        tuner.decision_key("image", "weights-2", CPU, options),
        tuner.decision_key("audio", "weights-1", CPU, options),
        tuner.decision_key("image", "weights-1", Machine("cpu", False, "another"), options),
        tuner.decision_key("image", "weights-1", CPU, EmbedderOptions(int8="allow")),
    ]
    assert key not in others and len(set(others)) == len(others)
    monkeypatch.setattr(tuner, "library_versions", lambda: (("torch", "99.0"),))
    assert tuner.decision_key("image", "weights-1", CPU, options) != key
    data = json.loads(tuner.tuning_path().read_text(encoding="utf-8"))
    data[key]["table"] = "damaged"
    tuner.tuning_path().write_text(json.dumps(data), encoding="utf-8")
    assert tuner.read_decision(key) is None  # measured again, never a crash


# ------------------------------------------------------------ the embedder's first use


@pytest.fixture
def image_checkpoint(tmp_path: Path) -> Path:
    return write_tiny_checkpoint(tmp_path / "image", "image", weights_format="safetensors")


@pytest.mark.parametrize(
    ("machine", "batch_size", "items"),
    [(CPU, 0, 2), (CPU, 8, 2), (CPU, 1, 1), (Machine("cuda", True, "H100"), 0, 32)],
)
def test_a_cpu_measures_two_items_a_gpu_its_whole_batch(
    image_checkpoint: Path, machine: Machine, batch_size: int, items: int
) -> None:
    from lbsearch.models.checkpoint import open_checkpoint

    checkpoint = open_checkpoint(str(image_checkpoint))
    options = EmbedderOptions(batch_size=batch_size)
    batch = tuned_towers.media_batch(checkpoint, Modality.IMAGE, options, machine)
    assert len(batch) == items
    assert tuple(batch[0].pixels.shape) == checkpoint.spec.input_shape


def _segments(embedder: LanguageBindEmbedder, count: int = 3) -> list[Segment]:
    size = embedder.media_spec(Modality.IMAGE).image_size
    pixels = torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(5))
    return [Segment("x", Modality.IMAGE, 0.0, 0.0, p) for p in pixels]


def _scripted(seconds: dict[str, float], calls: list[str]) -> tuned_towers.Timer:
    """A timer that runs the tower for real but reports scripted seconds per back-end/dtype."""

    def timer(tower: Any, batch: Sequence[Any]) -> tuple[np.ndarray, float]:
        vectors = np.asarray(tower.encode(batch))
        name = str(tower.encoding)
        calls.append(name)
        return vectors, seconds[name]

    return timer


def test_first_use_measures_keeps_the_winner_and_caches_the_decision(
    image_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lbsearch.embedder.onnx import load_onnx_media_tower
    from lbsearch.models.checkpoint import open_checkpoint

    load_onnx_media_tower(open_checkpoint(str(image_checkpoint)), Modality.IMAGE)  # cached export
    calls: list[str] = []
    speeds = {"torch/float32": 2.0, "onnxruntime/float32": 1.0}
    monkeypatch.setattr(tuned_towers, "time_batch", _scripted(speeds, calls))
    monkeypatch.setattr(tuned_towers, "cpu_bf16_native", lambda: False)
    models = {Modality.IMAGE: str(image_checkpoint)}
    told: list[str] = []
    options = EmbedderOptions(device="cpu")
    embedder = LanguageBindEmbedder(load_config(), options, models, told.append)
    before = str(embedder.encoding(Modality.IMAGE))  # the rule, until measured
    assert before in ("torch/float32", "torch/bfloat16")
    rows = embedder.embed_segments(Modality.IMAGE, _segments(embedder))
    assert calls == ["torch/float32", "onnxruntime/float32"]
    assert str(embedder.encoding(Modality.IMAGE)) == "onnxruntime/float32"
    assert any("Measuring" in line for line in told) and any("auto:" in line for line in told)
    reference = LanguageBindEmbedder(load_config(), EmbedderOptions(backend="torch"), models)
    expected = reference.embed_segments(Modality.IMAGE, _segments(embedder))
    assert float((rows * expected).sum(axis=1).min()) >= 0.9999

    calls.clear()  # a second process: the cached decision, nothing measured
    again = LanguageBindEmbedder(load_config(), options, models)
    assert str(again.encoding(Modality.IMAGE)) == "onnxruntime/float32"
    again.embed_segments(Modality.IMAGE, _segments(again))
    assert calls == [] and str(again.encoding(Modality.IMAGE)) == "onnxruntime/float32"


def test_without_a_cached_export_first_use_measures_nothing_and_exports_nothing(
    image_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lbsearch.embedder.cache import cache_dir

    monkeypatch.setattr(tuned_towers, "cpu_bf16_native", lambda: False)
    monkeypatch.setattr(tuned_towers, "time_batch", lambda *a: pytest.fail("measured"))
    before = set((cache_dir() / "onnx").rglob("*")) if (cache_dir() / "onnx").exists() else set()
    models = {Modality.IMAGE: str(image_checkpoint)}
    embedder = LanguageBindEmbedder(load_config(), EmbedderOptions(device="cpu"), models)
    embedder.embed_segments(Modality.IMAGE, _segments(embedder, 1))
    assert str(embedder.encoding(Modality.IMAGE)) == "torch/float32"
    after = set((cache_dir() / "onnx").rglob("*")) if (cache_dir() / "onnx").exists() else set()
    assert after == before


def test_naming_the_encoding_never_downloads_a_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from lbsearch.models import hub

    monkeypatch.setattr(hub, "pull", lambda *a, **k: pytest.fail("downloaded"))
    models = {Modality.AUDIO: "LanguageBind/Not_Downloaded"}
    embedder = LanguageBindEmbedder(load_config(), EmbedderOptions(device="cpu"), models)
    assert str(embedder.encoding(Modality.AUDIO)).startswith("torch/")


# --------------------------------------------------------------------- models --tune


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_models_tune_says_it_exports_shows_the_table_and_auto_follows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_tiny_config(tmp_path / "config.toml", tmp_path / "models", runtime=CPU_ONLY)
    speeds = {"torch/float32": 3.0, "onnxruntime/float32": 1.0, "onnxruntime/int8": 0.5}
    calls: list[str] = []
    monkeypatch.setattr(tuned_towers, "time_batch", _scripted(speeds, calls))
    monkeypatch.setattr(tuned_towers, "cpu_bf16_native", lambda: False)

    def text_timer(tower: Any, batch: Sequence[Any]) -> tuple[np.ndarray, float]:
        vectors = np.asarray(tower.encode(batch))
        calls.append(type(tower.tower).__name__)
        return vectors, 1.0 if "Onnx" in type(tower.tower).__name__ else 2.0

    real = tuned_towers.time_batch

    def either(tower: Any, batch: Sequence[Any]) -> tuple[np.ndarray, float]:
        return (text_timer if isinstance(tower, tuned_towers._ListInput) else real)(tower, batch)

    monkeypatch.setattr(tuned_towers, "time_batch", either)
    result = runner.invoke(
        app, ["--config", str(config), "models", "--tune", "-m", "image"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    err, out = result.stderr, result.stdout
    assert err.index("exported first") < err.index("Exporting the image tower")
    assert "image tower of" in out and "text tower of" in out
    assert "onnxruntime/float32" in out and "auto" in out
    assert "int8" not in out  # not allowed by default
    assert calls[:2] == ["torch/float32", "onnxruntime/float32"]
    embedder = LanguageBindEmbedder(load_config(config), EmbedderOptions(device="cpu"))
    assert str(embedder.encoding(Modality.IMAGE)) == "onnxruntime/float32"
    embedder.embed_texts(Modality.IMAGE, ["a dog"])
    tower = next(iter(embedder._text.values()))
    assert type(tower).__name__ == "OnnxTextTowerAdapter"


def test_models_tune_with_nothing_left_to_measure_is_a_usage_error(tmp_path: Path) -> None:
    config = write_tiny_config(
        tmp_path / "config.toml",
        tmp_path / "models",
        runtime={"backend": "torch", "dtype": "float32"},
    )
    result = runner.invoke(app, ["--config", str(config), "models", "--tune"])
    assert result.exit_code == 2 and "nothing to measure" in result.stderr


def test_installed_versions_are_read_without_importing_importlib_metadata() -> None:
    """What the cache key names, as package metadata says it, read without importing
    `importlib.metadata` (~35 ms of a cold query) when pip installed the package."""
    import subprocess
    import sys
    from importlib import metadata

    code = (
        "import sys\nfrom lbsearch.embedder.tuner import installed_version\n"
        "print(installed_version('onnxruntime'), installed_version('no_such_package_here'),"
        " 'importlib.metadata' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == [metadata.version("onnxruntime"), "None", "False"], done.stderr


@pytest.mark.skipif(
    not Path("/proc/cpuinfo").is_file()
    or "model name" not in Path("/proc/cpuinfo").read_text(errors="replace"),
    reason="needs a /proc/cpuinfo that names the CPU",
)
def test_the_cpu_is_named_without_running_uname(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold query looks the decision up by the CPU's name: /proc/cpuinfo's, not
    platform.processor()'s, which runs `uname -p` in a child process (~10 ms)."""

    def uname_p() -> str:
        raise AssertionError("platform.processor() was called")

    monkeypatch.setattr(tuner.platform, "processor", uname_p)
    model = next(
        line.partition(":")[2].strip()
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
        if line.startswith("model name")
    )
    assert tuner.cpu_name().startswith(f"{model} (flags ")
