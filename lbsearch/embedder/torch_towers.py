"""Towers on PyTorch (CPU, CUDA, MPS): segments or texts in, CPU float32 numpy rows out.

Whatever device a tower runs on, its output crosses back to host memory here and nowhere else.
On CUDA a media batch is submitted, not waited for: its pixels go up from page-locked memory on a
copy stream while the previous batch computes, and its vectors come down into page-locked memory
behind an event (`CudaVectors`), so the indexer decodes, writes and stacks the next batch while
the GPU works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..models.checkpoint import Checkpoint
from ..types import Modality, Segment
from .options import EmbedderOptions
from .protocol import Computed, Encoding, VectorsInFlight

if TYPE_CHECKING:
    import torch

    from ..models.encoder import Placement


def placement(options: EmbedderOptions, dtype: str) -> Placement:
    import torch

    from ..models.encoder import Placement

    if options.threads > 0:
        torch.set_num_threads(options.threads)
    return Placement.resolve(options.device, dtype, options.attention)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def to_host(tensor: torch.Tensor) -> np.ndarray:
    """Float32 numpy on the CPU, from a tensor on any device and in any dtype."""
    return tensor.detach().cpu().float().numpy().astype(np.float32, copy=False)


class TorchMediaTower:
    def __init__(
        self, checkpoint: Checkpoint, modality: Modality, options: EmbedderOptions
    ) -> None:
        from ..models.encoder import Encoder

        where = placement(options, options.media_dtype())
        self._encoder = Encoder(checkpoint, where, modality)
        self._streams = CudaStreams(where.device) if where.device.type == "cuda" else None
        self.dim = self._encoder.dim
        self.batch_size = options.batch_size_for(where.device.type)
        self.encoding = Encoding("torch", dtype_name(where.dtype))

    def encode(self, segments: Sequence[Segment]) -> np.ndarray:
        return self.submit(segments).result()

    def submit(self, segments: Sequence[Segment]) -> VectorsInFlight:
        """One batch; on CUDA it returns as soon as the work is queued on the GPU."""
        import torch

        rows = [segment.pixels for segment in segments]
        if self._streams is None:
            return Computed(to_host(self._encoder.encode(torch.stack(rows))))
        return self._streams.run(self._encoder.encode, rows)


class CudaStreams:
    """Pixels up on a copy stream, the tower on the compute stream, vectors down behind an event.

    The copy of batch n+1 overlaps the compute of batch n: the compute stream waits only for its
    own batch's copy. Both host buffers are page-locked, so the copies are truly asynchronous
    (pageable memory would make the CPU wait for them)."""

    def __init__(self, device: torch.device) -> None:
        import torch

        self.device = device
        self.copy = torch.cuda.Stream(device)

    def run(
        self, tower: Callable[[torch.Tensor], torch.Tensor], rows: Sequence[torch.Tensor]
    ) -> CudaVectors:
        import torch

        with torch.inference_mode():
            # stacked straight into page-locked memory: one host copy of the batch, not two (a
            # batch of 32 video windows is 154 MB)
            shape = (len(rows), *rows[0].shape)
            pinned = torch.empty(shape, dtype=rows[0].dtype, pin_memory=True)
            torch.stack(list(rows), out=pinned)
            with torch.cuda.stream(self.copy):
                uploaded = pinned.to(self.device, non_blocking=True)
            compute = torch.cuda.current_stream(self.device)
            compute.wait_stream(self.copy)
            # allocated on the copy stream, used on the compute one: not reused before it is done
            uploaded.record_stream(compute)
            vectors = tower(uploaded)
            host = torch.empty(vectors.shape, dtype=vectors.dtype, pin_memory=True)
            host.copy_(vectors, non_blocking=True)
            # blocking: an indexer waiting for it sleeps, it does not spin on the decoders' cores
            done = torch.cuda.Event(blocking=True)
            done.record(compute)
        return CudaVectors(host, done, pinned)


class CudaVectors:
    """A batch's vectors on their way to the host; `result` waits for its event only."""

    def __init__(self, host: torch.Tensor, done: torch.cuda.Event, pixels: torch.Tensor) -> None:
        self._host, self._done = host, done
        self._pixels: torch.Tensor | None = pixels  # the upload reads it until `done`

    def ready(self) -> bool:
        return bool(self._done.query())

    def result(self) -> np.ndarray:
        self._done.synchronize()
        self._pixels = None
        return to_host(self._host)


class TorchTextTower:
    def __init__(self, checkpoint: Checkpoint, options: EmbedderOptions) -> None:
        from ..models.encoder import load_text_encoder

        dtype = options.text_dtype()
        self._encoder = load_text_encoder(
            str(checkpoint.directory),
            device=options.device,
            dtype=dtype,
            attention=options.attention,
        )
        self._encoder.batch_size = max(1, options.text_batch_size)
        self.dim = self._encoder.dim

    def encode(self, texts: list[str]) -> np.ndarray:
        return to_host(self._encoder.encode_text(texts))


def torch_encoding(options: EmbedderOptions) -> Encoding:
    """The dtype "auto" resolves to on the device asked for (imports torch, reads no weights)."""
    return Encoding("torch", dtype_name(placement(options, options.media_dtype()).dtype))
