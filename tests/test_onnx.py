"""ONNX Runtime towers on tiny checkpoints: export once, same vectors as torch, int8, text, cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lbsearch
from lbsearch.embedder.onnx import (
    OnnxCacheError,
    load_onnx_media_tower,
    load_onnx_text_tower,
)
from lbsearch.embedder.onnx import quantize as quantize_module
from lbsearch.embedder.onnx.cache import META_FILE, MODEL_FILE, read_meta
from lbsearch.errors import CheckpointError, UsageError
from lbsearch.models.checkpoint import Checkpoint, open_checkpoint
from lbsearch.testing.checkpoints import write_tiny_checkpoint
from lbsearch.types import Modality

TEXTS = ["a dog barking", "", "Café 東京 🐕", "x " * 100]
MIN_COSINE = 0.99999
MIN_INT8_COSINE = 0.99  # tiny random towers; full-size ViT-L measures ~0.998 (bench/encoders.py)


def _pixels(shape: tuple[int, ...], batch: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).standard_normal((batch, *shape)).astype(np.float32)


def _torch_vectors(directory: Path, modality: Modality, pixels: np.ndarray) -> np.ndarray:
    encoder = lbsearch.load_encoder(modality, str(directory), device="cpu", dtype="float32")
    return encoder.encode(torch.from_numpy(pixels)).numpy()


def _media_entries(cache: Path) -> list[Path]:
    folder = cache / "onnx" / "v1" / "media"
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.mark.parametrize(
    ("name", "modality"),
    [("image", Modality.IMAGE), ("video_v15_ft", Modality.VIDEO), ("audio_lora", Modality.AUDIO)],
)
def test_media_tower_equals_torch_at_any_batch_size(
    tiny_dir: Path, cache: Path, name: str, modality: Modality, capfd: pytest.CaptureFixture[str]
) -> None:
    checkpoint = open_checkpoint(str(tiny_dir / name))
    messages: list[str] = []
    tower = load_onnx_media_tower(checkpoint, modality, notify=messages.append, cache_dir=cache)
    assert tower.input_shape == checkpoint.spec.input_shape and tower.dim == 16
    for batch in (1, 3):
        pixels = _pixels(tower.input_shape, batch)
        vectors = tower.encode(pixels)
        assert vectors.dtype == np.float32 and vectors.shape == (batch, tower.dim)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        cosines = (vectors * _torch_vectors(tiny_dir / name, modality, pixels)).sum(axis=1)
        assert cosines.min() >= MIN_COSINE, cosines
    assert tower.encode(np.zeros((0, *tower.input_shape), np.float32)).shape == (0, 16)
    assert messages[0].startswith(f"Exporting the {modality.value} tower of ")
    assert capfd.readouterr() == ("", ""), "the core never prints, nor does the exporter"


def test_int8_is_cached_apart_close_to_float32_and_quantised(tiny_dir: Path, cache: Path) -> None:
    import onnx

    checkpoint = open_checkpoint(str(tiny_dir / "image"))
    fp32 = load_onnx_media_tower(checkpoint, Modality.IMAGE, "float32", cache_dir=cache)
    int8 = load_onnx_media_tower(checkpoint, Modality.IMAGE, "int8", cache_dir=cache)
    pixels = _pixels(fp32.input_shape, 4)
    expected = _torch_vectors(tiny_dir / "image", Modality.IMAGE, pixels)
    vectors = int8.encode(pixels)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * expected).sum(axis=1)
    assert MIN_INT8_COSINE <= cosines.min() < 0.999999, "int8 moves vectors, a little"
    assert (fp32.encode(pixels) * expected).sum(axis=1).min() >= MIN_COSINE
    entries = _media_entries(cache)
    assert [p.name.rsplit("-", 1)[1] for p in entries] == ["float32", "int8"]
    int8_entry = entries[1]
    ops = {node.op_type for node in onnx.load(str(int8_entry / MODEL_FILE)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    meta = read_meta(int8_entry)
    assert meta["reduce_range"] is (not quantize_module.cpu_has_vnni())
    assert not (int8_entry / "float32").exists(), "the float32 graph it came from is not kept"


def test_int8_without_a_float32_export_keeps_only_int8(tiny_dir: Path, cache: Path) -> None:
    checkpoint = open_checkpoint(str(tiny_dir / "thermal"))
    tower = load_onnx_media_tower(checkpoint, Modality.THERMAL, "int8", cache_dir=cache)
    assert tower.encode(_pixels(tower.input_shape, 2)).shape == (2, 16)
    assert [p.name.rsplit("-", 1)[1] for p in _media_entries(cache)] == ["int8"]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse2 avx2 avx512f avx512_vnni avx512_bf16", True),
        ("fpu sse2 avx2 avx_vnni", True),
        ("fpu avx512f amx_tile amx_int8", True),
        ("fpu sse2 avx2 fma", False),
    ],
)
def test_vnni_is_read_from_the_cpu_flags(flags: str, expected: bool) -> None:
    cpuinfo = f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
    assert quantize_module.vnni_in(cpuinfo) is expected


def test_loading_an_exported_tower_does_not_export_again(tiny_dir: Path, cache: Path) -> None:
    checkpoint = open_checkpoint(str(tiny_dir / "depth"))
    load_onnx_media_tower(checkpoint, Modality.DEPTH, cache_dir=cache)
    messages: list[str] = []
    load_onnx_media_tower(checkpoint, Modality.DEPTH, notify=messages.append, cache_dir=cache)
    assert messages == []


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_a_changed_checkpoint_is_exported_again_and_the_old_export_removed(
    tiny_dir: Path, cache: Path, tmp_path: Path
) -> None:
    directory = shutil.copytree(tiny_dir / "image", tmp_path / "image")
    pixels = _pixels((3, 56, 56), 2)
    old = load_onnx_media_tower(open_checkpoint(str(directory)), Modality.IMAGE, cache_dir=cache)
    before = old.encode(pixels)
    (old_entry,) = _media_entries(cache)
    write_tiny_checkpoint(directory, "image", seed=7, weights_format="safetensors")
    os.utime(directory / "model.safetensors", ns=(1, 1))  # a different mtime, whatever the clock
    messages: list[str] = []
    checkpoint = open_checkpoint(str(directory))
    new = load_onnx_media_tower(checkpoint, Modality.IMAGE, notify=messages.append, cache_dir=cache)
    after = new.encode(pixels)
    np.testing.assert_allclose(after, _torch_vectors(directory, Modality.IMAGE, pixels), atol=1e-5)
    assert (before * after).sum(axis=1).max() < 0.99, "new weights, new vectors"
    assert messages and messages[0].startswith("Exporting")
    assert [p.name for p in _media_entries(cache)] != [old_entry.name]
    assert not old_entry.exists()


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_an_incomplete_or_damaged_entry_is_rebuilt(tiny_dir: Path, cache: Path) -> None:
    checkpoint = open_checkpoint(str(tiny_dir / "image"))
    load_onnx_media_tower(checkpoint, Modality.IMAGE, cache_dir=cache)
    (entry,) = _media_entries(cache)
    (entry / (MODEL_FILE + ".data")).write_bytes(b"truncated")
    tower = load_onnx_media_tower(checkpoint, Modality.IMAGE, cache_dir=cache)
    assert tower.encode(_pixels(tower.input_shape, 1)).shape == (1, 16)
    (entry / META_FILE).unlink()  # a crash before completion leaves no meta.json
    messages: list[str] = []
    load_onnx_media_tower(checkpoint, Modality.IMAGE, notify=messages.append, cache_dir=cache)
    assert messages and (entry / META_FILE).is_file()


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_concurrent_exporters_leave_one_complete_entry(tiny_dir: Path, cache: Path) -> None:
    code = (
        "import sys\n"
        "from lbsearch.embedder.onnx import load_onnx_media_tower\n"
        "from lbsearch.models.checkpoint import open_checkpoint\n"
        "from lbsearch.types import Modality\n"
        "ck = open_checkpoint(sys.argv[1])\n"
        "t = load_onnx_media_tower(ck, Modality.AUDIO, cache_dir=sys.argv[2])\n"
        "import numpy as np\n"
        "print(t.encode(np.zeros((1, *t.input_shape), np.float32)).shape)\n"
    )
    args = [sys.executable, "-c", code, str(tiny_dir / "audio_ft"), str(cache)]
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    runs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [run.communicate(timeout=240) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert [out for out, _ in outputs] == ["(1, 16)\n", "(1, 16)\n"]
    (entry,) = _media_entries(cache)
    assert sorted(p.name for p in entry.iterdir()) == [META_FILE, MODEL_FILE, MODEL_FILE + ".data"]
    leftovers = [p for p in entry.parent.iterdir() if not p.name.endswith(".lock")]
    assert leftovers == [entry], "no temporary folder is left behind"


def test_unwritable_cache_says_where_and_what_to_do(tiny_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache should go", encoding="utf-8")
    checkpoint = open_checkpoint(str(tiny_dir / "image"))
    with pytest.raises(OnnxCacheError, match=r"cannot write the ONNX cache") as info:
        load_onnx_media_tower(checkpoint, Modality.IMAGE, cache_dir=blocker)
    assert "LBSEARCH_CACHE" in info.value.hint


def test_wrong_modality_dtype_and_shape_are_refused(tiny_dir: Path, cache: Path) -> None:
    checkpoint = open_checkpoint(str(tiny_dir / "image"))
    with pytest.raises(CheckpointError, match=r"a image checkpoint, not audio"):
        load_onnx_media_tower(checkpoint, Modality.AUDIO, cache_dir=cache)
    with pytest.raises(UsageError, match=r"float32 or int8, not 'bfloat16'"):
        load_onnx_media_tower(checkpoint, Modality.IMAGE, "bfloat16", cache_dir=cache)
    tower = load_onnx_media_tower(checkpoint, Modality.IMAGE, cache_dir=cache)
    with pytest.raises(UsageError, match=r"expected \(batch, 3, 56, 56\)"):
        tower.encode(np.zeros((1, 3, 48, 48), np.float32))


def test_sessions_sleep_instead_of_spinning(tiny_dir: Path, cache: Path) -> None:
    checkpoint = open_checkpoint(str(tiny_dir / "image"))
    tower = load_onnx_media_tower(checkpoint, Modality.IMAGE, threads=1, cache_dir=cache)
    options = tower.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 1


@pytest.mark.parametrize("threads", [0, 1])
def test_the_text_tower_runs_on_the_configured_threads(tiny_dir: Path, threads: int) -> None:
    """[runtime] threads, as for the media towers: 0 (the default) is every core, which reads a
    short text's weights faster than one thread (34 against 47 ms a warm query, 2 cores)."""
    from lbsearch.embedder.onnx_towers import OnnxTextTowerAdapter
    from lbsearch.embedder.options import EmbedderOptions

    checkpoint = open_checkpoint(str(tiny_dir / "image"))
    options = EmbedderOptions(backend="onnxruntime", threads=threads)
    adapter = OnnxTextTowerAdapter(checkpoint, options, None)
    session_options = adapter._tower.session.get_session_options()
    assert session_options.intra_op_num_threads == threads


def _text_checkpoints(tiny_dir: Path) -> tuple[Checkpoint, Checkpoint]:
    # The tiny checkpoints share one text tower bit for bit, as the released ones do.
    return open_checkpoint(str(tiny_dir / "image")), open_checkpoint(str(tiny_dir / "audio_ft"))


def test_text_tower_equals_torch_and_is_shared(tiny_dir: Path, cache: Path) -> None:
    image, audio = _text_checkpoints(tiny_dir)
    messages: list[str] = []
    tower = load_onnx_text_tower(image, notify=messages.append, cache_dir=cache)
    torch_encoder = lbsearch.load_text_encoder(str(image.directory), device="cpu", dtype="float32")
    assert tower.identity == torch_encoder.fingerprint
    vectors = tower.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 16)
    cosines = (vectors * torch_encoder.encode_text(TEXTS).numpy()).sum(axis=1)
    assert cosines.min() >= MIN_COSINE, cosines
    np.testing.assert_allclose(vectors[:1], tower.encode(TEXTS[:1]), atol=1e-6)
    assert tower.encode([]).shape == (0, 16)
    with pytest.raises(UsageError, match="list of texts"):
        tower.encode("a dog")  # type: ignore[arg-type]
    again: list[str] = []
    shared = load_onnx_text_tower(audio, notify=again.append, cache_dir=cache)
    assert shared.identity == tower.identity
    np.testing.assert_array_equal(shared.encode(TEXTS), vectors)
    assert len(messages) == 2 and again == [], "one export for identical text towers"
    (entry,) = (cache / "onnx" / "v1" / "text").glob(f"{tower.identity}-*")
    assert read_meta(entry)["identity"] == tower.identity


def test_cached_text_tower_runs_without_torch_or_transformers(tiny_dir: Path, cache: Path) -> None:
    image, _ = _text_checkpoints(tiny_dir)
    expected = load_onnx_text_tower(image, cache_dir=cache).encode(["a dog barking"])
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from lbsearch.embedder.onnx import load_onnx_text_tower\n"
        "from lbsearch.models.checkpoint import open_checkpoint\n"
        "tower = load_onnx_text_tower(open_checkpoint(sys.argv[1]), cache_dir=sys.argv[2])\n"
        "np.save(sys.argv[3], tower.encode(['a dog barking']))\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = cache / "vectors.npy"
    result = subprocess.run(
        [sys.executable, "-c", code, str(image.directory), str(cache), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    np.testing.assert_allclose(np.load(out), expected, atol=1e-6)


def test_quick_start_skips_prepacking_and_gives_the_same_vectors(
    tiny_dir: Path, cache: Path
) -> None:
    image, _ = _text_checkpoints(tiny_dir)
    packed = load_onnx_text_tower(image, cache_dir=cache)
    quick = load_onnx_text_tower(image, cache_dir=cache, quick_start=True)
    assert quick is not packed
    options = quick.session.get_session_options()
    assert options.get_session_config_entry("session.disable_prepacking") == "1"
    np.testing.assert_allclose(quick.encode(TEXTS), packed.encode(TEXTS), atol=1e-6)


# ------------------------------------------------------------ the optimised text tower


def _optimized_entries(cache: Path) -> list[Path]:
    folder = cache / "onnx" / "v1" / "text-optimized"
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))  # not lock files


def _optimized_entry(cache: Path) -> Path:
    (entry,) = _optimized_entries(cache)
    return entry


def test_text_tower_opens_its_optimised_copy_without_optimising_again(
    tiny_dir: Path, cache: Path
) -> None:
    import onnxruntime as ort

    from lbsearch.embedder.onnx.sessions import open_session

    image, _ = _text_checkpoints(tiny_dir)
    tower = load_onnx_text_tower(image, cache_dir=cache)
    optimized = _optimized_entry(cache)
    assert optimized.name.endswith(f"-ort{ort.__version__}"), "specific to this ONNX Runtime"
    meta = read_meta(optimized)
    assert meta["usable"] and meta["min_cosine_to_export"] >= 0.9999
    assert (optimized / f"{MODEL_FILE}.data").is_file(), "weights apart, memory-mapped"
    options = tower.session.get_session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert Path(tower.session._model_path) == optimized / MODEL_FILE
    (export,) = (p for p in (cache / "onnx" / "v1" / "text").iterdir() if p.name[0] != ".")
    batch = tower.tokenizer(TEXTS)
    feed = {"input_ids": batch.input_ids, "eos_positions": batch.eos_positions}
    plain = open_session(export / MODEL_FILE, 1, optimize=False).run(["vectors"], feed)[0]
    cosines = (tower.encode(TEXTS).astype(np.float64) * plain).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines
    quick = load_onnx_text_tower(image, cache_dir=cache, quick_start=True)
    assert Path(quick.session._model_path) == optimized / MODEL_FILE


def test_an_optimised_copy_that_differs_is_recorded_and_not_used(
    tiny_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lbsearch.embedder.onnx import towers

    image, _ = _text_checkpoints(tiny_dir)
    monkeypatch.setattr(towers, "min_cosine", lambda *args: 0.5)
    tower = load_onnx_text_tower(image, cache_dir=cache)
    optimized = _optimized_entry(cache)
    assert read_meta(optimized)["usable"] is False
    assert not (optimized / f"{MODEL_FILE}.data").exists(), "its weights are not kept"
    assert "text-optimized" not in tower.session._model_path
    assert tower.encode(["a dog"]).shape == (1, 16)

    def fail(*args: object) -> None:
        raise AssertionError("the optimised copy was made again")

    monkeypatch.setattr(towers, "save_optimized", fail)
    load_onnx_text_tower(image, cache_dir=cache)  # the record stands: not tried again


def test_another_onnxruntime_makes_its_own_optimised_copy_and_drops_the_old(
    tiny_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime as ort

    image, _ = _text_checkpoints(tiny_dir)
    load_onnx_text_tower(image, cache_dir=cache)
    monkeypatch.setattr(ort, "__version__", "0.0.1-other")
    tower = load_onnx_text_tower(image, cache_dir=cache)
    (entry,) = _optimized_entries(cache)  # the other version's copy is removed
    assert entry.name.endswith("-ort0.0.1_other")
    assert "-ort0.0.1_other" in tower.session._model_path


def test_a_graph_onnxruntime_cannot_optimise_is_recorded_and_not_tried_again(
    tiny_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed optimisation took seconds, and every query tried it again."""
    from lbsearch.embedder.onnx import towers
    from lbsearch.embedder.onnx.cache import OnnxCacheError

    def cannot(*args: object) -> None:
        raise OnnxCacheError("model.onnx: ONNX Runtime cannot load the exported tower: boom", "")

    image, _ = _text_checkpoints(tiny_dir)
    monkeypatch.setattr(towers, "save_optimized", cannot)
    tower = load_onnx_text_tower(image, cache_dir=cache)
    assert "text-optimized" not in tower.session._model_path  # the plain export
    assert tower.encode(["a dog"]).shape == (1, 16)
    meta = read_meta(_optimized_entry(cache))
    assert meta["usable"] is False and "boom" in meta["error"]

    def again(*args: object) -> None:
        raise AssertionError("the optimisation was tried again")

    monkeypatch.setattr(towers, "save_optimized", again)
    quick = load_onnx_text_tower(image, cache_dir=cache, quick_start=True)
    assert "text-optimized" not in quick.session._model_path


TELEMETRY = """
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from lbsearch.embedder.onnx.sessions import open_session

x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.save(model, sys.argv[1])
session = open_session(Path(sys.argv[1]))
print(session.run(["y"], {"x": __import__("numpy").ones(1, "float32")})[0])
"""
CI_VARIABLES = (  # where ONNX Runtime finds one, it records nothing: the test must not look like CI
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "JENKINS_URL",
    "TRAVIS",
    "CIRCLECI",
    "BUILDKITE",
    "TF_BUILD",
    "CODEBUILD_BUILD_ID",
    "BITBUCKET_BUILD_NUMBER",
    "TEAMCITY_VERSION",
)


def test_onnx_runtime_records_and_sends_no_telemetry(tmp_path: Path) -> None:
    """ONNX Runtime's own telemetry (a device id and an event store in the user's cache, then
    uploads) stays off in a process that runs lbsearch's sessions, CI or not."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (*CI_VARIABLES, "ORT_DISABLE_TELEMETRY")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    args = [sys.executable, "-c", TELEMETRY, str(tmp_path / "identity.onnx")]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[1.]", done.stderr
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []
