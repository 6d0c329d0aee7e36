"""The text tower written out as an ONNX graph around ONNX Runtime's attention operator.

torch.onnx traces the torch module op by op: ~50 nodes a layer (q, k and v projected apart,
the causal mask built from Trilu and Where, each head reshaped and transposed), and ONNX
Runtime's optimiser does not fuse a causal CLIP block into its attention kernel. A query is a
few tokens, so the dispatch of each node is a large share of its work. Written here from the
tower's weights, a block is twelve nodes: layer norm, Attention (q, k and v packed in one matrix,
the causal mask an attribute), the out projection, its bias, the residual, layer norm, fc1, its
bias, the activation, fc2, its bias, the residual.

Two more rows are left out where the causal mask makes them constant or unread:

- the start-of-text token is every text's first token, at position 0, and sees only itself:
  its keys and values in every layer are the same for every text. They are computed once at
  export and given to each attention as its cached past, so the graph runs the tokens after it
  (ids[:, 0] must be the start token; OnnxTextTower checks). Beyond one row less of every
  product, this matters because ONNX Runtime's float32 GEMM on x86 reads the weights once per
  6 rows: measured on 2 cores, a pass took 18.7 ms for 6 tokens and 22.5 ms for 7 (and 26.0
  for 12, 30.0 for 13), and a typical query ("a photo of a dog") is 7 tokens;
- only the end-of-text token's state is pooled, and nothing reads the other positions after
  the last attention: from there on the graph carries that one row per text.

Measured on 2 cores with a full-size tower (7 tokens): 0.87-0.90x the time of ONNX Runtime's
optimised trace; the fused SkipLayerNormalization and BiasGelu operators were 3% slower than
the plain layer norms and adds here. The graph is checked against the torch tower before it is
kept (export.py), as the traced one was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .cache import MODEL_FILE
from .sessions import EOS_POSITIONS, IDS, VECTORS

OPSET = 20
CONTRIB = "com.microsoft"
NORM_FLOOR = 1e-12  # torch.nn.functional.normalize's floor under a row's norm

Linear = tuple[np.ndarray, np.ndarray]  # (in, out) matrix for MatMul, (out,) bias
Norm = tuple[np.ndarray, np.ndarray]  # gamma, beta


@dataclass(frozen=True)
class TextLayer:
    """One pre-LN CLIP block's weights."""

    norm1: Norm
    qkv: Linear  # (D, 3D): the q, k and v projections side by side
    start_past: np.ndarray  # (2, 1, heads, 1, D / heads): the start token's keys and values
    out: Linear
    norm2: Norm
    fc1: Linear
    fc2: Linear


@dataclass(frozen=True)
class TextWeights:
    """A text tower's weights and the shape config.json gives it, free of torch."""

    token_table: np.ndarray  # (vocab, D)
    position_table: np.ndarray  # (positions, D)
    layers: tuple[TextLayer, ...]
    final_norm: Norm
    projection: np.ndarray  # (D, P), no bias
    num_heads: int
    activation: str  # config.json's hidden_act
    epsilon: float


@dataclass
class _Graph:
    """Nodes and initializers being written; each helper returns its output's name."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(
        self, op: str, inputs: list[str], name: str, domain: str = "", also: int = 0, **attrs: Any
    ) -> str:
        """`also`: outputs after the first that the operator must have and nothing reads."""
        outputs = [name, *(f"{name}.unread{i}" for i in range(also))]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, domain=domain, **attrs))
        return name

    def linear(self, name: str, value: str, weights: Linear) -> str:
        matrix = self.constant(f"{name}.weight", weights[0])
        product = self.node("MatMul", [value, matrix], f"{name}.product")
        return self.node("Add", [product, self.constant(f"{name}.bias", weights[1])], name)

    def norm(self, name: str, value: str, weights: Norm, epsilon: float) -> str:
        gamma = self.constant(f"{name}.gamma", weights[0])
        beta = self.constant(f"{name}.beta", weights[1])
        return self.node("LayerNormalization", [value, gamma, beta], name, epsilon=epsilon)


def write_text_graph(weights: TextWeights, folder: Path) -> Path:
    """(B, L) int64 ids, each row beginning with the start token, and (B,) int64 EOS positions
    -> (B, P) float32 unit rows, B and L dynamic; saved as `folder`/model.onnx with its weights
    beside it (model.onnx.data)."""
    graph = _Graph()
    _unit_rows(graph, _tower(graph, weights))
    inputs = [
        helper.make_tensor_value_info(IDS, TensorProto.INT64, ["batch", "length"]),
        helper.make_tensor_value_info(EOS_POSITIONS, TensorProto.INT64, ["batch"]),
    ]
    width = int(weights.projection.shape[1])
    outputs = [helper.make_tensor_value_info(VECTORS, TensorProto.FLOAT, ["batch", width])]
    model = helper.make_model(
        helper.make_graph(graph.nodes, "text_tower", inputs, outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(CONTRIB, 1)],
        producer_name="lbsearch",
    )
    path = folder / MODEL_FILE
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=f"{MODEL_FILE}.data",
        size_threshold=1024,
    )
    return path


def _tower(graph: _Graph, weights: TextWeights) -> str:
    """The projected (B, P) state of each text's end-of-text token."""
    one = graph.constant("one", _i64(1))
    residual = _embeddings(graph, weights, one)
    after_start = graph.node("Sub", [EOS_POSITIONS, one], "eos_after_start")
    eos = graph.node("Unsqueeze", [after_start, graph.constant("last_axis", _i64(-1))], "eos")
    past_shape = _past_shape(graph, weights.layers[0].start_past)
    for index, layer in enumerate(weights.layers):
        last = index == len(weights.layers) - 1
        past = graph.node(
            "Expand",
            [graph.constant(f"layer{index}.start_past", layer.start_past), past_shape],
            f"layer{index}.past",
        )
        residual = _block(
            graph, weights, f"layer{index}", layer, (residual, past), eos if last else None
        )
    pooled = graph.norm("final_norm", residual, weights.final_norm, weights.epsilon)
    matrix = graph.constant("projection", weights.projection)
    return graph.node("MatMul", [pooled, matrix], "projected")


def _embeddings(graph: _Graph, weights: TextWeights, one: str) -> str:
    """Each token's embedding plus that of its position, from position 1 (after the start
    token) to L-1."""
    length = graph.node("Shape", [IDS], "length", start=1, end=2)
    rest = graph.node("Slice", [IDS, one, length, one], "ids_after_start")
    table = graph.constant("token_table", weights.token_table)
    tokens = graph.node("Gather", [table, rest], "tokens")
    positions = graph.constant("position_table", weights.position_table)
    zero = graph.constant("zero", _i64(0))
    positions = graph.node("Slice", [positions, one, length, zero], "positions")
    return graph.node("Add", [tokens, positions], "embedded")


def _past_shape(graph: _Graph, start_past: np.ndarray) -> str:
    """(2, B, heads, 1, head size): the start token's past repeated for each text."""
    batch = graph.node("Shape", [IDS], "batch", start=0, end=1)
    two = graph.constant("two", _i64(2))
    rest = graph.constant("past_head_shape", np.array(start_past.shape[2:], dtype=np.int64))
    return graph.node("Concat", [two, batch, rest], "past_shape", axis=0)


def _block(
    graph: _Graph,
    weights: TextWeights,
    name: str,
    layer: TextLayer,
    stream: tuple[str, str],
    eos: str | None,
) -> str:
    """One block on the residual stream (B, L-1, D) and the start token's past; with `eos`
    (the last block), only the end-of-text rows go on after the attention, and the result is
    (B, D)."""
    residual, past = stream
    normed = graph.norm(f"{name}.norm1", residual, layer.norm1, weights.epsilon)
    matrix = graph.constant(f"{name}.qkv", layer.qkv[0])
    bias = graph.constant(f"{name}.qkv_bias", layer.qkv[1])
    attended = graph.node(
        "Attention",
        [normed, matrix, bias, "", past],  # no mask: the causal one is an attribute
        f"{name}.attention",
        domain=CONTRIB,
        also=1,  # the present keys and values, required with a past
        num_heads=weights.num_heads,
        unidirectional=1,  # CLIP's causal mask: no token sees a later one
    )
    if eos is not None:
        attended = graph.node("GatherND", [attended, eos], f"{name}.attention_eos", batch_dims=1)
        residual = graph.node("GatherND", [residual, eos], f"{name}.residual_eos", batch_dims=1)
    projected = graph.linear(f"{name}.out", attended, layer.out)
    middle = graph.node("Add", [residual, projected], f"{name}.middle")
    normed2 = graph.norm(f"{name}.norm2", middle, layer.norm2, weights.epsilon)
    raised = _activation(
        graph, name, graph.linear(f"{name}.fc1", normed2, layer.fc1), weights.activation
    )
    lowered = graph.linear(f"{name}.fc2", raised, layer.fc2)
    return graph.node("Add", [middle, lowered], f"{name}.output")


def _activation(graph: _Graph, name: str, value: str, activation: str) -> str:
    """The MLP's activation, as towers.py's _activation picks it from hidden_act."""
    out = f"{name}.activated"
    if activation == "quick_gelu":
        return graph.node("QuickGelu", [value], out, domain=CONTRIB, alpha=1.702)
    tanh = activation in ("gelu_new", "gelu_pytorch_tanh")
    return graph.node("Gelu", [value], out, approximate="tanh" if tanh else "none")


def _unit_rows(graph: _Graph, rows: str) -> str:
    """rows / max(|row|, 1e-12), as torch.nn.functional.normalize."""
    axis = graph.constant("row_axis", _i64(1))
    norms = graph.node("ReduceL2", [rows, axis], "norms", keepdims=1)
    floor = graph.constant("norm_floor", np.array(NORM_FLOOR, dtype=np.float32))
    return graph.node("Div", [rows, graph.node("Max", [norms, floor], "safe_norms")], VECTORS)


def _i64(value: int) -> np.ndarray:
    return np.array([value], dtype=np.int64)
