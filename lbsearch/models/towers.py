"""The LanguageBind towers as plain torch modules.

Parameter names mirror transformers' CLIPModel (`vision_model.encoder.layers.0.self_attn.q_proj...`),
so released state dicts load key for key once LoRA is merged. Only inference is supported: no
dropout, no patch dropout, no gradient paths.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .spec import TextSpec, TowerShape, VisionSpec

AttentionImpl = Literal["eager", "sdpa"]


def _activation(name: str) -> nn.Module:
    if name == "quick_gelu":
        return _QuickGELU()
    return nn.GELU(approximate="tanh" if name in ("gelu_new", "gelu_pytorch_tanh") else "none")


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Table(nn.Module):
    """A lookup table stored as `.weight`, like nn.Embedding but with no initialisation: weights
    always come from a checkpoint, and nn.Embedding's normal_() on the meta device pulls in
    torch._dynamo (about 2 s of a cold text query)."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(rows, dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


class Attention(nn.Module):
    """CLIP multi-head attention (q, k, v, out projections with bias, scale head_dim**-0.5)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.impl: AttentionImpl = "sdpa"

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        batch, length, dim = x.shape
        split = (batch, length, self.num_heads, self.head_dim)
        q = self.q_proj(x).view(split).transpose(1, 2)
        k = self.k_proj(x).view(split).transpose(1, 2)
        v = self.v_proj(x).view(split).transpose(1, 2)
        if self.impl == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        else:
            out = _eager_attention(q, k, v, causal)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))


def _eager_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool
) -> torch.Tensor:
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if causal:
        length = q.shape[-2]
        future = torch.ones(length, length, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, torch.finfo(scores.dtype).min)
    # Softmax in float32 as transformers' eager CLIP does, so low precision stays close to fp32.
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return weights @ v


class MLP(nn.Module):
    def __init__(self, shape: TowerShape) -> None:
        super().__init__()
        self.fc1 = nn.Linear(shape.hidden_size, shape.intermediate_size)
        self.act = _activation(shape.hidden_act)
        self.fc2 = nn.Linear(shape.intermediate_size, shape.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class EncoderLayer(nn.Module):
    """Pre-LN CLIP block; video layers first mix each token across frames (temporal attention)."""

    def __init__(self, shape: TowerShape, num_frames: int = 0) -> None:
        super().__init__()
        dim, eps = shape.hidden_size, shape.layer_norm_eps
        self.num_frames = num_frames
        if num_frames:
            self.temporal_embedding = nn.Parameter(torch.empty(1, num_frames, dim))
            self.temporal_layer_norm1 = nn.LayerNorm(dim, eps=eps)
            self.temporal_attn = Attention(dim, shape.num_heads)
        self.self_attn = Attention(dim, shape.num_heads)
        self.layer_norm1 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(shape)
        self.layer_norm2 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        if self.num_frames:
            x = self._temporal(x)
        x = x + self.self_attn(self.layer_norm1(x), causal=causal)
        return x + self.mlp(self.layer_norm2(x))

    def _temporal(self, x: torch.Tensor) -> torch.Tensor:
        frames_total, tokens, dim = x.shape
        t = self.num_frames
        # (B*T, N, D) -> (B*N, T, D): every spatial token attends over its own clip's frames.
        per_token = x.view(frames_total // t, t, tokens, dim).transpose(1, 2)
        per_token = per_token.reshape(-1, t, dim) + self.temporal_embedding[:, :t]
        per_token = per_token + self.temporal_attn(self.temporal_layer_norm1(per_token))
        return per_token.view(-1, tokens, t, dim).transpose(1, 2).reshape(frames_total, tokens, dim)


class Encoder(nn.Module):
    def __init__(self, shape: TowerShape, num_frames: int = 0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(shape, num_frames) for _ in range(shape.num_layers)
        )

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, causal=causal)
        return x


class VisionEmbeddings(nn.Module):
    """Patch + CLS + learned positions on a (rows x cols) grid (non-square for audio).

    v1.5 video checkpoints have one CLS embedding per frame and store the patch kernel as a
    (D, C, 1, P, P) Conv3d; with a tube size of 1 that is this Conv2d, reshaped at load.
    """

    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        dim = spec.shape.hidden_size
        cls_shape = (spec.num_frames, dim) if spec.per_frame_cls else (dim,)
        self.class_embedding = nn.Parameter(torch.empty(cls_shape))
        self.patch_embedding = nn.Conv2d(
            spec.num_channels, dim, spec.patch_size, stride=spec.patch_size, bias=False
        )
        self.position_embedding = Table(spec.num_positions, dim)
        self.frames_per_clip = spec.num_frames

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(frames).flatten(2).transpose(1, 2)  # (BT, rows*cols, D)
        if self.class_embedding.dim() == 2:  # per-frame CLS, frames are batch-major (b0t0, b0t1...)
            clips = frames.shape[0] // self.frames_per_clip
            cls = self.class_embedding.repeat(clips, 1).unsqueeze(1)
        else:
            cls = self.class_embedding.expand(frames.shape[0], 1, -1)
        tokens = torch.cat([cls.to(patches.dtype), patches], dim=1)
        return tokens + self.position_embedding.weight[: tokens.shape[1]]


class VisionTransformer(nn.Module):
    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        eps = spec.shape.layer_norm_eps
        self.embeddings = VisionEmbeddings(spec)
        self.pre_layrnorm = nn.LayerNorm(spec.shape.hidden_size, eps=eps)  # sic: CLIP's key name
        self.encoder = Encoder(spec.shape, spec.num_frames if spec.temporal else 0)
        self.post_layernorm = nn.LayerNorm(spec.shape.hidden_size, eps=eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) or (B, C, T, H, W) -> pooled (B, D): CLS per frame, post-LN, mean over T."""
        if pixel_values.dim() == 5:
            batch, channels, frames, height, width = pixel_values.shape
            pixel_values = pixel_values.transpose(1, 2).reshape(-1, channels, height, width)
        else:
            batch, frames = pixel_values.shape[0], 1
        hidden = self.encoder(self.pre_layrnorm(self.embeddings(pixel_values)))
        pooled = self.post_layernorm(hidden[:, 0])
        return pooled.view(batch, frames, -1).mean(dim=1)


class VisionModel(nn.Module):
    """A checkpoint's modality tower and its projection into the shared space."""

    def __init__(self, spec: VisionSpec, projection_dim: int) -> None:
        super().__init__()
        self.vision_model = VisionTransformer(spec)
        self.visual_projection = nn.Linear(spec.shape.hidden_size, projection_dim, bias=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.visual_projection(self.vision_model(pixel_values))


class TextEmbeddings(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.token_embedding = Table(spec.vocab_size, spec.shape.hidden_size)
        self.position_embedding = Table(spec.max_positions, spec.shape.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = self.position_embedding.weight[: input_ids.shape[1]]
        return self.token_embedding(input_ids) + positions


class TextTransformer(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.embeddings = TextEmbeddings(spec)
        self.encoder = Encoder(spec.shape)
        self.final_layer_norm = nn.LayerNorm(spec.shape.hidden_size, eps=spec.shape.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, eos_positions: torch.Tensor) -> torch.Tensor:
        """Pooled state at each sequence's end-of-text token.

        With CLIP's causal mask no position attends to a later one, so padding after the EOS
        token cannot change it: callers trim the padding and no padding mask is needed.
        """
        hidden = self.final_layer_norm(self.encoder(self.embeddings(input_ids), causal=True))
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), eos_positions]


class TextModel(nn.Module):
    def __init__(self, spec: TextSpec, projection_dim: int) -> None:
        super().__init__()
        self.text_model = TextTransformer(spec)
        self.text_projection = nn.Linear(spec.shape.hidden_size, projection_dim, bias=False)

    def forward(self, input_ids: torch.Tensor, eos_positions: torch.Tensor) -> torch.Tensor:
        return self.text_projection(self.text_model(input_ids, eos_positions))


def set_attention(model: nn.Module, impl: AttentionImpl) -> None:
    for module in model.modules():
        if isinstance(module, Attention):
            module.impl = impl
