"""The one embedder: ids and specs without weights, shared text towers, recorded encodings, and
encoders whose outputs live off the CPU (as on CUDA or MPS) through the indexer, embed and query."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lbsearch.config import load_config
from lbsearch.embedder import EmbedderOptions, LanguageBindEmbedder, open_embedder
from lbsearch.errors import UsageError
from lbsearch.types import Modality

TORCH_ONLY = {"backend": "torch"}


class OffCpuTensor(torch.Tensor):
    """Stands for a tensor on a GPU: it cannot become numpy until copied to the host."""

    def numpy(self, *args: object, **kwargs: object) -> np.ndarray:  # type: ignore[override]
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu()")

    def cpu(self, *args: object, **kwargs: object) -> torch.Tensor:  # type: ignore[override]
        return self.as_subclass(torch.Tensor).clone()


@pytest.fixture
def off_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tower hands back its vectors 'on the device'."""
    from lbsearch.models import encoder as models

    media, text = models.Encoder.encode, models.TextEncoder.encode_text
    monkeypatch.setattr(
        models.Encoder, "encode", lambda self, x: media(self, x).as_subclass(OffCpuTensor)
    )
    monkeypatch.setattr(
        models.TextEncoder,
        "encode_text",
        lambda self, texts: text(self, texts).as_subclass(OffCpuTensor),
    )


def test_the_fixture_really_simulates_a_device(off_cpu: None, tiny_dir: Path) -> None:
    import lbsearch

    encoder = lbsearch.load_encoder("image", str(tiny_dir / "image"), device="cpu")
    out = encoder.encode(torch.zeros(1, *encoder.input_shape))
    with pytest.raises(TypeError, match="cuda"):
        out.numpy()


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_index_embed_and_query_with_outputs_off_the_cpu(
    off_cpu: None, tiny_config: Path, tmp_path: Path
) -> None:
    from lbsearch.embedding import embed_files, embed_texts
    from lbsearch.indexers.pipeline import run_index
    from lbsearch.library import Library
    from lbsearch.search import Query, SearchEngine, Term
    from lbsearch.testing.samples import write_sample_media

    config = load_config(tiny_config)
    media = tmp_path / "media"
    write_sample_media(media)
    embedder = open_embedder(config, **TORCH_ONLY)
    with Library.open(tmp_path / "lib", config=config, write=True) as lib:
        finished = run_index([media], lib, embedder, config)
    assert finished.counts.failed == 0 and finished.segments_embedded > 0

    picture = next(p for p in sorted(media.rglob("*.jpg")) if "depth" not in str(p))
    [result] = embed_files([picture], None, embedder, config)
    assert result.error is None and len(result.segments[0].vector) == embedder.dim(Modality.IMAGE)
    [text] = embed_texts(["a dog"], Modality.IMAGE, embedder)
    assert abs(np.linalg.norm(text.segments[0].vector) - 1) < 1e-5

    with Library.open(tmp_path / "lib", config=config) as lib:
        engine = SearchEngine(lib, config, open_embedder(config, **TORCH_ONLY))
        assert engine.search(Query((Term("a dog barking"),), limit=3))
        outside = tmp_path / "outside.jpg"
        shutil.copy(picture, outside)
        outside.write_bytes(outside.read_bytes())  # a new file: encoded, not read from the library
        assert engine.search(Query((Term(file=outside),), limit=3))


def test_ids_and_specs_come_without_reading_weights(
    tiny_config: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lbsearch.models import weights

    def no_weights(*args: object) -> None:
        raise AssertionError("weights were read")

    monkeypatch.setattr(weights, "read_tensors", no_weights)
    embedder = open_embedder(load_config(tiny_config), **TORCH_ONLY)
    assert embedder.model_id(Modality.VIDEO) == str((tiny_dir / "video_ft").resolve())
    assert embedder.media_spec(Modality.AUDIO).modality is Modality.AUDIO
    assert str(embedder.encoding(Modality.IMAGE)) == "torch/float32"


def test_checkpoints_with_one_text_tower_load_and_encode_it_once(
    tiny_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lbsearch.embedder import identity

    embedder = open_embedder(load_config(tiny_config), **TORCH_ONLY)
    first = embedder.embed_texts(Modality.IMAGE, ["a dog", "a cat"])
    for modality in Modality:
        again = embedder.embed_texts(modality, ["a cat", "a dog"])
        np.testing.assert_array_equal(again, first[::-1])
    assert embedder.texts_encoded == 2 and len(embedder._text) == 1

    # the identity of each checkpoint's text tower is cached: a second process reads no weights
    monkeypatch.setattr(identity, "_digest", lambda checkpoint: pytest.fail("hashed again"))
    fresh = open_embedder(load_config(tiny_config), **TORCH_ONLY)
    for modality in Modality:
        identity.text_tower_identity(fresh.checkpoint(modality))


def test_a_batch_larger_than_the_text_cache_returns_every_vector(tiny_config: Path) -> None:
    """More distinct texts than the cache holds: the batch evicted its own first entries and
    raised KeyError."""
    from lbsearch.embedder import languagebind

    texts = [f"text number {i}" for i in range(languagebind._TEXT_CACHE_SIZE + 50)]
    embedder = open_embedder(load_config(tiny_config), **TORCH_ONLY)
    rows = embedder.embed_texts(Modality.IMAGE, [*texts, texts[0]])
    assert rows.shape[0] == len(texts) + 1 and embedder.texts_encoded == len(texts)
    np.testing.assert_array_equal(rows[0], rows[-1])
    again = embedder.embed_texts(Modality.IMAGE, [texts[0], texts[-1]])
    np.testing.assert_allclose(again, rows[[0, -2]], atol=1e-6)


def test_changing_a_checkpoint_file_hashes_its_text_tower_again(
    tiny_dir: Path, tmp_path: Path
) -> None:
    from lbsearch.embedder.identity import text_tower_identity
    from lbsearch.models.checkpoint import open_checkpoint
    from lbsearch.testing.checkpoints import write_tiny_checkpoint

    write_tiny_checkpoint(tmp_path / "ckpt", "image", weights_format="safetensors")
    before = text_tower_identity(open_checkpoint(str(tmp_path / "ckpt")))
    write_tiny_checkpoint(tmp_path / "ckpt", "image", weights_format="safetensors", text_seed=7)
    after = text_tower_identity(open_checkpoint(str(tmp_path / "ckpt")))
    assert before != after


def test_rows_are_float32_unit_vectors_in_input_order(tiny_config: Path) -> None:
    from lbsearch.types import Segment

    config = load_config(tiny_config)
    options = EmbedderOptions(backend="torch", device="cpu", dtype="float32", batch_size=2)
    embedder = LanguageBindEmbedder(config, options)
    spec = embedder.media_spec(Modality.IMAGE)
    pixels = torch.randn(
        5, 3, spec.image_size, spec.image_size, generator=torch.Generator().manual_seed(0)
    )
    segments = [Segment("x", Modality.IMAGE, 0.0, 0.0, p) for p in pixels]
    rows = embedder.embed_segments(Modality.IMAGE, segments)
    assert rows.dtype == np.float32 and rows.shape == (5, embedder.dim(Modality.IMAGE))
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([embedder.embed_segments(Modality.IMAGE, [s]) for s in segments])
    np.testing.assert_allclose(rows, one_by_one, atol=1e-5)
    assert embedder.embed_segments(Modality.IMAGE, []).shape == (0, rows.shape[1])


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"backend": "tensorrt"}, "unknown backend"),
        ({"backend": "torch", "dtype": "int8"}, "ONNX Runtime only"),
        ({"backend": "onnxruntime", "dtype": "bfloat16"}, "float32 or int8"),
        ({"backend": "onnxruntime", "device": "cuda"}, "runs on the CPU"),
    ],
)
def test_impossible_runtime_choices_say_what_to_do(changes: dict[str, str], words: str) -> None:
    with pytest.raises(UsageError, match=words) as raised:
        EmbedderOptions(**changes).check()
    assert raised.value.hint


def test_auto_chooses_back_ends_per_tower_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    from lbsearch.embedder import options

    monkeypatch.setattr(options, "accelerator_present", lambda: False)
    cpu = EmbedderOptions()
    assert (cpu.media_backend(), cpu.text_backend()) == ("torch", "onnxruntime")
    assert EmbedderOptions(dtype="int8").media_backend() == "onnxruntime"
    assert EmbedderOptions(dtype="int8").text_dtype() == "float32"
    monkeypatch.setattr(options, "accelerator_present", lambda: True)
    assert EmbedderOptions().text_backend() == "torch"
    assert EmbedderOptions(device="cpu").text_backend() == "onnxruntime"


def test_load_encoder_on_onnx_runtime_matches_torch(tiny_dir: Path) -> None:
    import lbsearch

    model = str(tiny_dir / "audio_ft")
    on_torch = lbsearch.load_encoder("audio", model, device="cpu", dtype="float32")
    on_onnx = lbsearch.load_encoder("audio", model, backend="onnxruntime")
    pixels = torch.randn(2, *on_torch.input_shape, generator=torch.Generator().manual_seed(3))
    expected = on_torch.encode(pixels).numpy()
    cosine = (on_onnx.encode(pixels.numpy()) * expected).sum(axis=1)
    assert cosine.min() >= 0.99999
    text = (on_onnx.encode_text(["a dog"]) * on_torch.encode_text(["a dog"]).numpy()).sum()
    assert text >= 0.99999
    with pytest.raises(UsageError, match="CPU"):
        lbsearch.load_encoder("audio", model, backend="onnxruntime", device="cuda")
