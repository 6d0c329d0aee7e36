"""Export a checkpoint's towers from lbsearch's torch modules to ONNX (needs torch, onnx and
onnxscript).

Media towers go through torch.onnx's torch.export-based exporter (`dynamo=True`: the TorchScript
exporter is deprecated in torch 2.9+ and slated for removal). The text tower, which a query waits
for, is written from its weights by text_graph.py around ONNX Runtime's fused attention instead.
Each graph ends in the L2 normalisation, so ONNX Runtime hands out unit rows as torch's encoders
do, and before an export is kept it is run once in ONNX Runtime against torch on the same inputs:
an export that does not reproduce the torch tower (cosine < 0.99999) is refused instead of cached.

Only this module imports torch; running an exported tower never does.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from ...models.checkpoint import Checkpoint
from ...models.encoder import Encoder, Placement, TextEncoder
from ...models.spec import TextSpec
from ...models.towers import EncoderLayer, TextModel
from ...types import Modality
from ..torch_towers import to_host
from .cache import MODEL_FILE, OnnxCacheError
from .sessions import EOS_POSITIONS, IDS, PIXELS, VECTORS
from .text_graph import TextLayer, TextWeights, write_text_graph

OPSET = 20
MIN_EXPORT_COSINE = 0.99999


@dataclass(frozen=True)
class ExportReport:
    seconds: float
    min_cosine: float  # ONNX Runtime against torch on the check inputs


class _UnitMedia(nn.Module):
    """A media tower whose outputs are unit rows, normalised in float32 as the torch encoders do."""

    def __init__(self, tower: nn.Module) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.tower(pixels).float(), dim=-1)


class _UnitText(nn.Module):
    def __init__(self, tower: nn.Module) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, input_ids: torch.Tensor, eos_positions: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.tower(input_ids, eos_positions).float(), dim=-1)


def load_media_module(checkpoint: Checkpoint, modality: Modality) -> nn.Module:
    return Encoder(checkpoint, _CPU_FP32, modality).model


def load_text_module(checkpoint: Checkpoint) -> tuple[TextModel, str]:
    """The text tower and its content fingerprint (equal for towers with identical weights)."""
    encoder = TextEncoder(checkpoint, _CPU_FP32)
    assert isinstance(encoder.model, TextModel)  # TextEncoder builds one
    return encoder.model, encoder.fingerprint


def export_media(module: nn.Module, input_shape: tuple[int, ...], folder: Path) -> ExportReport:
    """(B, *input_shape) float32 -> (B, dim) unit rows, B dynamic."""
    pixels = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=4096)
    return _export(
        _UnitMedia(module),
        (pixels,),
        folder,
        input_names=[PIXELS],
        dynamic_shapes=({0: batch},),
    )


def export_text(module: TextModel, spec: TextSpec, start_id: int, folder: Path) -> ExportReport:
    """(B, L) int64 ids, each row starting with `start_id`, and (B,) int64 EOS positions ->
    (B, dim) unit rows, B and L dynamic: the graph text_graph.py writes from the module's
    weights, not a trace of the module."""
    start = time.perf_counter()
    try:
        write_text_graph(text_weights(module, spec, start_id), folder)
    except ImportError as exc:
        raise OnnxCacheError(
            f"writing the text tower to ONNX needs a package that is not installed: {exc.name}",
            "pip install onnx (it comes with lbsearch's dependencies)",
        ) from exc
    seconds = time.perf_counter() - start
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, spec.vocab_size, (3, 7), generator=generator, dtype=torch.int64)
    ids[:, 0] = start_id
    eos = torch.tensor([6, 1, 4], dtype=torch.int64)  # rows of other lengths, padded
    inputs = (ids, eos)
    cosine = _check_against_torch(
        _UnitText(module), inputs, folder / MODEL_FILE, [IDS, EOS_POSITIONS]
    )
    return ExportReport(seconds, cosine)


def text_weights(module: TextModel, spec: TextSpec, start_id: int) -> TextWeights:
    """The text tower's weights as numpy arrays, laid out for text_graph.py (float32), and
    the keys and values of the start token in each layer, as the torch tower computes them."""
    tower = module.text_model
    encoder_layers = [cast(EncoderLayer, layer) for layer in tower.encoder.layers]
    pasts = _start_pasts(module, encoder_layers, start_id, spec.shape.num_heads)
    layers = tuple(
        _layer_weights(layer, past) for layer, past in zip(encoder_layers, pasts, strict=True)
    )
    return TextWeights(
        token_table=to_host(tower.embeddings.token_embedding.weight),
        position_table=to_host(tower.embeddings.position_embedding.weight),
        layers=layers,
        final_norm=_norm(tower.final_layer_norm),
        projection=to_host(module.text_projection.weight).T,
        num_heads=spec.shape.num_heads,
        activation=spec.shape.hidden_act,
        epsilon=spec.shape.layer_norm_eps,
    )


@torch.inference_mode()
def _start_pasts(
    module: TextModel, layers: list[EncoderLayer], start_id: int, heads: int
) -> list[np.ndarray]:
    """Each layer's keys and values of the start token alone at position 0, as
    (2, 1, heads, 1, head size): what every text's first position gives (causal mask)."""
    state = module.text_model.embeddings(torch.tensor([[start_id]]))
    pasts = []
    for layer in layers:
        normed = layer.layer_norm1(state)
        pair = [layer.self_attn.k_proj(normed), layer.self_attn.v_proj(normed)]
        pasts.append(np.stack([to_host(p).reshape(1, heads, 1, -1) for p in pair]))
        state = layer(state, causal=True)
    return pasts


def _layer_weights(layer: EncoderLayer, start_past: np.ndarray) -> TextLayer:
    attention = layer.self_attn
    return TextLayer(
        norm1=_norm(layer.layer_norm1),
        qkv=_packed(attention.q_proj, attention.k_proj, attention.v_proj),
        start_past=start_past,
        out=_packed(attention.out_proj),
        norm2=_norm(layer.layer_norm2),
        fc1=_packed(layer.mlp.fc1),
        fc2=_packed(layer.mlp.fc2),
    )


def _packed(*linears: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    """Linear layers side by side as one (in, sum of outs) matrix for MatMul, and their biases."""
    matrix = np.concatenate([to_host(linear.weight).T for linear in linears], axis=1)
    return matrix, np.concatenate([to_host(linear.bias) for linear in linears])


def _norm(norm: nn.LayerNorm) -> tuple[np.ndarray, np.ndarray]:
    return to_host(norm.weight), to_host(norm.bias)


def _export(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    folder: Path,
    input_names: list[str],
    dynamic_shapes: tuple[dict[int, object], ...],
) -> ExportReport:
    path = folder / MODEL_FILE
    start = time.perf_counter()
    try:
        with _quiet():
            torch.onnx.export(
                model.eval(),
                inputs,
                str(path),
                dynamo=True,
                input_names=input_names,
                output_names=[VECTORS],
                dynamic_shapes=dynamic_shapes,
                opset_version=OPSET,
                external_data=True,  # ViT-H towers pass protobuf's 2 GB limit
                verbose=False,
            )
    except ImportError as exc:
        raise OnnxCacheError(
            f"exporting to ONNX needs a package that is not installed: {exc.name or exc}",
            "pip install onnx onnxscript (they come with lbsearch's dependencies)",
        ) from exc
    except Exception as exc:  # the exporter raises many types; none is recoverable here
        raise OnnxCacheError(
            f"{path}: torch.onnx could not export the tower: {exc}",
            "report this with the checkpoint's config.json; use the torch back-end meanwhile",
        ) from exc
    seconds = time.perf_counter() - start
    return ExportReport(seconds, _check_against_torch(model, inputs, path, input_names))


def _check_against_torch(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, input_names: list[str]
) -> float:
    import onnxruntime as ort

    with torch.inference_mode():
        expected = model(*inputs).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {name: tensor.numpy() for name, tensor in zip(input_names, inputs, strict=True)}
    got = session.run([VECTORS], feed)[0]
    cosine = float((expected.astype(np.float64) * got).sum(axis=1).min())
    if cosine < MIN_EXPORT_COSINE:
        raise OnnxCacheError(
            f"{path}: the exported graph differs from the torch tower (cosine {cosine:.6f})",
            "report this with the checkpoint's config.json; use the torch back-end meanwhile",
        )
    return cosine


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter logs and warns about its own internals (a missing torchvision, deprecated
    pytree helpers); none of it concerns the user, and the core never prints."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


_CPU_FP32 = Placement(torch.device("cpu"), torch.float32, "sdpa")
