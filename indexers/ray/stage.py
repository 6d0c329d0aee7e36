"""The Ray side of `lbsearch index --ray`: connect, check the files are shared, and stream
(file, modality) targets through decode tasks and one encoder actor pool per modality.

One Ray Data execution: a branch per modality (decode tasks, then that modality's actors, each
holding one tower), joined by a union. All actors start together (one start-up for the run) and
the branches run side by side, sharing the cluster under Ray Data's resource manager; a video
completes when its sound track, in the audio branch, is embedded too. Ray Data streams with
backpressure: decoded segments wait in the object store only as long as the actors are busy.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from lbsearch.config import Config
from lbsearch.embedder import Embedder
from lbsearch.types import Modality

from .actors import EncoderActor, actor_encodings, check_encoding
from .decode import can_read, decode_rows, part_seconds, split_parts
from .options import RayOptions, RayRunError, import_ray
from .rows import Embedded, PartsCollector, TargetJob, input_row

# the order branches are built in (Ray Data schedules them side by side)
ORDER = (Modality.VIDEO, Modality.AUDIO, Modality.IMAGE, Modality.DEPTH, Modality.THERMAL)
_MAX_INPUT_BLOCKS = 20000  # one decode task per file up to this; beyond, a few files per task
# Faults: Ray Data restarts a lost encoder actor and retries its batch (no limit by default);
# Ray retries a decode task whose worker or node was lost (3 times by default).
_PROBE_RETRIES = 3
# segments per actor call when [runtime] batch_size is auto: the embedder's own batch on a CPU
# or a GPU (small batches on CPUs also let an actor start before many segments are decoded)
_BATCH_CPU, _BATCH_GPU = 8, 32


class RayStage:
    """Use as a context manager; `run` yields targets as they complete."""

    def __init__(self, options: RayOptions, config: Config, encoders: Embedder) -> None:
        """`encoders`: this machine's embedder, asked for model ids, input specs and encodings
        only (its weights never load here)."""
        self.options, self.config, self.encoders = options, config, encoders
        self.ray = import_ray()
        self._started = False

    def __enter__(self) -> RayStage:
        self._started = _connect(self.ray, self.options)
        _quiet(self.ray)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self.ray.shutdown()

    def run(self, jobs: Sequence[TargetJob]) -> Generator[Embedded, None, None]:
        if not jobs:
            return
        modalities = [m for m in ORDER if any(j.modality is m for j in jobs)]
        encodings = {m: str(self.encoders.encoding(m)) for m in modalities}
        probe = self._probe_encodings(modalities)  # its worker starts while reads are checked
        check_shared(self.ray, jobs[0].path)
        resolved = self.ray.get(probe)
        for modality, recorded in encodings.items():
            check_encoding(resolved[modality.value], recorded, modality)
        branches = [
            self._branch([j for j in jobs if j.modality is m], len(modalities), encodings[m])
            for m in modalities
        ]
        dataset = branches[0].union(*branches[1:]) if len(branches) > 1 else branches[0]
        model_ids = {m: self.encoders.model_id(m) for m in modalities}
        collector = PartsCollector({j.key: j for j in jobs}, model_ids)
        rows = dataset.iter_rows()
        try:
            for row in rows:
                done = collector.add(row)
                if done is not None:
                    yield done
        except self.ray.exceptions.RayError as exc:
            raise ray_failed(exc) from exc
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()  # stops the execution when the caller leaves early (Ctrl-C)

    def _probe_encodings(self, modalities: list[Modality]) -> Any:
        """What the actors will resolve each modality's encoding to (an object ref): checked
        against what this machine records before any actor starts."""
        gpus = self.options.gpus_per_actor or None
        probe = self.ray.remote(num_cpus=0, num_gpus=gpus)(actor_encodings)
        return probe.remote(self.options.factory, [m.value for m in modalities])

    def _branch(self, jobs: list[TargetJob], pools: int, encoding: str) -> Any:
        """Decode tasks and an encoder actor pool for the jobs of one modality."""
        data, opts, modality = self.ray.data, self.options, jobs[0].modality
        blocks = min(len(jobs), _MAX_INPUT_BLOCKS)
        ds = data.from_items([input_row(j) for j in jobs], override_num_blocks=blocks)
        seconds = part_seconds(self.config, opts.windows_per_part)
        if modality is Modality.VIDEO and math.isfinite(seconds):
            ds = ds.flat_map(split_parts, fn_kwargs={"part_seconds": seconds}, num_cpus=0.25)
            ds = ds.repartition(target_num_rows_per_block=1)  # one decode task per part
        ds = ds.flat_map(
            decode_rows,
            fn_kwargs={"spec": self.encoders.media_spec(modality), "cfg": self.config},
            num_cpus=opts.decode_cpus,
        )
        plan = actor_plan(self.ray, opts, pools)
        return ds.map_batches(
            EncoderActor,
            fn_constructor_args=(
                opts.factory,
                modality.value,
                plan.threads,
                encoding,
                plan.take_turns,
            ),
            batch_size=self.config.runtime.batch_size
            or (_BATCH_GPU if opts.gpus_per_actor else _BATCH_CPU),
            batch_format="numpy",
            compute=data.ActorPoolStrategy(size=plan.actors),
            num_cpus=plan.cpus,
            num_gpus=plan.gpus or None,
        )


@dataclass(frozen=True)
class ActorPlan:
    actors: int  # per modality pool
    cpus: float  # reserved by each actor
    gpus: float  # reserved by each actor (0: encode on CPUs)
    threads: int  # torch threads each actor runs
    take_turns: bool = False  # a node's actors encode one batch at a time (actors.machine_turn)


def actor_plan(ray: Any, options: RayOptions, pools: int) -> ActorPlan:
    """How many encoder actors per modality pool, and what each reserves. The pools run side by
    side and each must be able to start, so they share what they would otherwise each take."""
    resources = ray.cluster_resources()
    total = float(resources.get("CPU", 1))
    left = max(1.0, total - options.decode_cpus)
    if options.gpus_per_actor > 0:
        gpus = float(resources.get("GPU", 0))
        if gpus < min(1.0, options.gpus_per_actor):
            raise RayRunError(
                f"--gpus-per-actor {options.gpus_per_actor:g} but the cluster has {gpus:g} GPUs",
                "drop --gpus-per-actor to encode on CPUs, or add GPU nodes",
            )
        actors = options.actors or max(1, int(gpus // (options.gpus_per_actor * pools)))
        # fewer GPUs than the pools ask for: their actors share the GPUs
        share = min(options.gpus_per_actor, gpus / (actors * pools))
        return ActorPlan(actors, _amount(min(1.0, left / (actors * pools))), _amount(share), 1)
    # CPU encoding: one actor per node by default, each with a thread per core of its node; the
    # pools' actors on a node then take turns, as the local encoder runs one batch at a time
    # (decoding interleaves with it). More actors per node (--actors) share the node's cores
    # and encode side by side.
    nodes = _nodes(ray)
    actors = options.actors or nodes
    threads = max(1, round(total / max(actors, nodes)))
    cpus = _amount(left / (actors * pools))
    return ActorPlan(actors, cpus, 0.0, threads, take_turns=actors <= nodes)


def _amount(value: float) -> float:
    """A resource amount Ray accepts: a fraction up to 1, whole numbers above."""
    return value if value <= 1 else float(math.floor(value))


def _nodes(ray: Any) -> int:
    return sum(1 for node in ray.nodes() if node.get("Alive") and node["Resources"].get("CPU"))


def check_shared(ray: Any, path: str) -> None:
    """Every node with CPUs must read `path` as the driver does (a shared mount at one path)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=_PROBE_RETRIES)(can_read)
    pending = [
        probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote(path)
        for node in ray.nodes()
        if node.get("Alive") and node["Resources"].get("CPU")
    ]
    for host, problem in ray.get(pending):
        if problem:
            raise not_shared(path, host, problem)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its task names


def ray_failed(error: BaseException) -> RayRunError:
    """What stopped a Ray execution (an error raised in a task or an actor), as a message."""
    root = error
    for _ in range(8):  # Ray wraps the task's own exception, once or more (never a cycle)
        cause = getattr(root, "cause", None) or root.__cause__
        if cause is None or cause is root:
            break
        root = cause
    lines = [line.strip() for line in _ANSI.sub("", str(root)).splitlines() if line.strip()]
    what = f"{type(root).__name__}: {lines[0]}" if lines else type(root).__name__
    return RayRunError(
        f"the Ray run stopped: {what[:300]}",
        "what was written so far is kept: run again, with or without --ray, to finish; Ray's "
        "logs (/tmp/ray/session_latest/logs on each node) say more",
    )


def not_shared(path: str, host: str, problem: str) -> RayRunError:
    return RayRunError(
        f"{path}: Ray node {host} cannot read this file, which this machine reads ({problem})",
        "files must be readable at the same path on every node: mount the media folder at the "
        "same path everywhere (NFS, SMB, a cluster file system), or index with a local run",
    )


def _connect(ray: Any, options: RayOptions) -> bool:
    """Join or start Ray; True when this call started it (and must shut it down)."""
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
    try:
        if options.address == "local":
            ray.init(
                address="local",
                num_cpus=options.local_cpus or None,
                object_store_memory=options.object_store_bytes or None,
                include_dashboard=False,
                **quiet,
            )
        else:  # auto: RAY_ADDRESS, else a cluster running here, else a new local instance
            address = None if options.address == "auto" else options.address
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayRunError(
            f"cannot join the Ray cluster at {options.address!r}: {exc}",
            "start it (`ray start --head` on the head node) or check RAY_ADDRESS and --ray",
        ) from None
    return True


def _quiet(ray: Any) -> None:
    """lbsearch draws its own progress bars; Ray Data's would interleave with them."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.verbose_stats_logs = False
    context.raise_original_map_exception = True  # the encoder's own error, for ray_failed
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
