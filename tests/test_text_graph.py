"""The text tower's ONNX graph as text_graph.py writes it: the torch tower's vectors for every
activation config.json can name, padded batches, and the fused form that makes it fast."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lbsearch.embedder.onnx import load_onnx_text_tower
from lbsearch.embedder.onnx.cache import MODEL_FILE, OnnxCache, read_meta
from lbsearch.embedder.onnx.export import MIN_EXPORT_COSINE, export_text
from lbsearch.embedder.onnx.sessions import EOS_POSITIONS, IDS, VECTORS
from lbsearch.errors import UsageError
from lbsearch.models.checkpoint import open_checkpoint
from lbsearch.models.spec import TextSpec, TowerShape
from lbsearch.models.towers import TextModel

LAYERS = 3
START = 118  # the start-of-text id of the random towers (vocab 120)


def _random_tower(activation: str, seed: int = 0) -> tuple[TextModel, TextSpec]:
    spec = TextSpec(
        TowerShape(32, 80, LAYERS, 4, activation, 1e-5), vocab_size=120, max_positions=20
    )
    model = TextModel(spec, projection_dim=12)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            # gammas near 1, the rest large enough that every part of a block matters
            parameter.copy_(
                1 + 0.2 * noise if "layer_norm" in name and "weight" in name else 0.3 * noise
            )
    return model.eval(), spec


def _torch_rows(model: TextModel, ids: np.ndarray, eos: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        rows = model(torch.from_numpy(ids), torch.from_numpy(eos))
    return torch.nn.functional.normalize(rows, dim=-1).numpy()


@pytest.mark.parametrize("activation", ["gelu", "quick_gelu", "gelu_pytorch_tanh", "gelu_new"])
def test_the_written_graph_gives_the_torch_towers_vectors(activation: str, tmp_path: Path) -> None:
    model, spec = _random_tower(activation)
    report = export_text(model, spec, START, tmp_path)
    assert report.min_cosine >= MIN_EXPORT_COSINE
    session = ort.InferenceSession(str(tmp_path / MODEL_FILE), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    ids = rng.integers(0, spec.vocab_size, size=(4, spec.max_positions), dtype=np.int64)
    ids[:, 0] = START
    eos = np.array([19, 1, 6, 12], dtype=np.int64)  # the longest row, an empty text, padded rows
    got = session.run([VECTORS], {IDS: ids, EOS_POSITIONS: eos})[0]
    np.testing.assert_allclose(got, _torch_rows(model, ids, eos), atol=2e-6)
    for row in range(len(ids)):  # alone and trimmed to its own length, as a query runs
        alone = ids[row : row + 1, : eos[row] + 1]
        single = session.run([VECTORS], {IDS: alone, EOS_POSITIONS: eos[row : row + 1]})[0]
        np.testing.assert_allclose(single[0], got[row], atol=2e-6)


def test_the_graph_is_the_fused_form_a_query_runs_fast_in(tmp_path: Path) -> None:
    model, spec = _random_tower("gelu")
    export_text(model, spec, START, tmp_path)
    graph = onnx.load(str(tmp_path / MODEL_FILE), load_external_data=False).graph
    ops = [node.op_type for node in graph.node]
    attention = [node for node in graph.node if node.op_type == "Attention"]
    assert len(attention) == LAYERS
    for node in attention:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attributes == {"num_heads": 4, "unidirectional": 1}
    assert not {"Trilu", "Where", "Transpose", "Softmax"} & set(ops), "attention unfused"
    assert len(ops) <= 13 * LAYERS + 16, ops  # the trace: ~50 a layer
    # the start token's keys and values come in as each attention's past, not computed
    assert all(len(node.input) == 5 and node.input[4] for node in attention)
    # after the last attention only the end-of-text rows go on (two gathers, one per stream)
    last = max(i for i, op in enumerate(ops) if op == "Attention")
    assert ops[last + 1 : last + 3] == ["GatherND", "GatherND"]
    assert sum(1 for i in graph.initializer if "qkv" in i.name and i.dims[:2] == [32, 96]) == LAYERS


def test_an_older_text_graph_is_replaced_and_its_copies_removed(
    tiny_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    checkpoint = open_checkpoint(str(tiny_dir / "image"))
    entry = load_onnx_text_tower(checkpoint, cache_dir=cache)
    start = entry.tokenizer.start_id
    current = OnnxCache(cache).text_entry(entry.identity, checkpoint.spec.text, start)
    assert read_meta(current)["graph"] == 2 and current.name.endswith(f"-g2-{start}")
    plain = current.name.rsplit("-g", 1)[0]
    text, optimized = current.parent, current.parent.parent / "text-optimized"
    older = [text / plain, text / f"{plain}-g1", optimized / f"{plain}-ort1.20.0"]
    unrelated = [
        text / "0123abcd-89abcdef-g2-7",  # other weights
        optimized / "0123abcd-89abcdef-g2-7-ort1.20.0",
        text / f"{plain}-g2-{start + 1}",  # the same weights for another start token
    ]
    for folder in older + unrelated:
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text("{}")
    shutil.rmtree(current)  # exported again: the new graph replaces the older ones
    again = load_onnx_text_tower(checkpoint, cache_dir=cache)
    np.testing.assert_allclose(again.encode(["a dog"]), entry.encode(["a dog"]), atol=1e-6)
    assert current.is_dir()
    assert [p for p in older if p.exists()] == []
    assert all(p.exists() for p in unrelated)


def test_the_tower_refuses_rows_that_do_not_begin_with_the_start_token(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tower = load_onnx_text_tower(open_checkpoint(str(tiny_dir / "image")), cache_dir=tmp_path)
    assert tower.encode(["a dog"]).shape == (1, 16)
    # the graph takes the start token's keys and values as given: another first id would get
    # the start token's states silently
    monkeypatch.setattr(tower.tokenizer, "start_id", tower.tokenizer.start_id + 1)
    with pytest.raises(UsageError, match="start token"):
        tower.encode(["a dog"])
