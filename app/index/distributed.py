"""Index builds across a Ray cluster: `python -m app index build ... --engine ray --workers N`.

The contexts are cut (on the driver) into shards of whole batches. Each of N Ray actors
loads the model and SAE once and runs the single-process builder (`build_index`) on the
shards it is given, with global context ids and per-batch seeds, so each shard's state is
exactly that shard's part of a one-process build. The driver merges the partial states
(`merge_states`: exact and order independent) and the job writes the index as a
one-process build does. A finished shard's state is kept in the job's work directory, so a
build stopped half way runs only the shards that are missing.

Workers read the model config the driver loaded (its paths must exist on every node: the
same checkout or image, or hub models) and check that their weights have the driver's
fingerprints.
"""

import logging
import math
import os
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from app.engine.config import LoadedConfig
from app.errors import InvalidRequest, Unavailable
from app.index.builder import IndexParams, IndexState, build_index, merge_states
from app.index.datasets import Contexts

log = logging.getLogger(__name__)


def shard_bounds(n_contexts: int, batch_size: int, shards: int) -> list[tuple[int, int]]:
    """Cut contexts [0, n) into at most `shards` runs of whole batches, as even as can be:
    [(first context, end), ...]."""
    n_batches = math.ceil(n_contexts / batch_size)
    shards = max(1, min(shards, n_batches))
    cuts = [n_batches * i // shards for i in range(shards + 1)]
    return [
        (a * batch_size, min(b * batch_size, n_contexts))
        for a, b in zip(cuts, cuts[1:], strict=False)
    ]


class ShardWorker:
    """A Ray actor (see `build_index_ray`): one model and SAE, loaded once, many shards."""

    def __init__(
        self,
        config: LoadedConfig,
        model_id: str,
        sae_id: str,
        device: str,
        dtype: str,
        threads: int,
    ):
        from app.engine.registry import Registry

        torch.set_num_threads(max(1, threads))
        self.registry = Registry(
            config, device=device, dtype=dtype, only_models=[model_id], probe=False
        )
        self.sae, self.model = self.registry.sae_for(sae_id, model_id)
        self.model_id = model_id

    def fingerprints(self) -> tuple[str, str]:
        return self.model.fingerprint, self.sae.fingerprint

    def build(self, tokens: np.ndarray, first: int, bos_id: int, params: IndexParams) -> dict:
        """The partial state of contexts [first, first + len(tokens)), on the CPU."""
        contexts = Contexts(tokens, [], bos_id, first=first)
        with self.registry.activate(self.model_id) as live:
            state = build_index(live, self.sae, contexts, params, progress=False)
        return state.to("cpu").state_dict()


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc  # a RayTaskError carries the worker's error
    message = getattr(cause, "message", None) or str(cause)
    lines = message.strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """Refuse a malformed cluster address, or one where nothing answers, at once (Ray
    itself retries an unreachable address for minutes)."""
    if address is None or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InvalidRequest(
            f"address: {address!r} is not 'auto', 'HOST:PORT' (the head's GCS port, "
            f"6379 by default) or 'ray://HOST:PORT' (Ray Client, 10001 by default)",
            field="address",
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise Unavailable(
            f"address: no Ray cluster answers at {address!r} ({exc.strerror or exc}); start "
            f"one with `ray start --head`, or leave out --address for a local one",
            field="address",
        ) from exc


def connect(address: str | None, num_cpus: int):
    """The Ray module, connected: to `address` (a running cluster: 'auto', 'HOST:6379' or
    'ray://HOST:10001'), else to a local cluster started here with `num_cpus` CPUs.
    Returns (ray, whether this call started the connection)."""
    import ray

    if ray.is_initialized():
        return ray, False
    check_address(address)
    try:
        if address is None:
            ray.init(
                address="local",  # a new cluster, even beside another one on this machine
                num_cpus=num_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
        else:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 - no cluster there, a bad address, ...
        where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
        hint = "start one with `ray start --head`, or leave out --address for a local one"
        if address is not None and "RAY_AUTH_MODE" not in os.environ:
            hint = (
                "a cluster with token authentication (the default of `ray start`) needs "
                "RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN or ~/.ray/auth_token; " + hint
            )
        raise Unavailable(
            f"address: could not connect to {where}: {_one_line(exc)} ({hint})", field="address"
        ) from exc
    return ray, True


def build_index_ray(
    config: LoadedConfig,
    model_id: str,
    sae_id: str,
    contexts: Contexts,
    params: IndexParams,
    *,
    workers: int,
    address: str | None = None,
    shards: int | None = None,
    device: torch.device | str = "cpu",
    dtype: str = "float32",
    cpus_per_worker: int = 1,
    fingerprints: tuple[str, str] | None = None,
    shard_dir: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> IndexState:
    """The index state of `contexts`, built by `workers` Ray actors over `shards` shards
    (default: one per worker) and merged; equal to `build_index` on all of them. Each
    actor asks for `cpus_per_worker` CPUs, and one GPU when `device` is CUDA.
    `fingerprints` (model, SAE) are checked against each worker's weights. Finished shards
    are saved in `shard_dir` and not built again; `on_progress(batches done, batches)`
    after each shard."""
    if workers < 1:
        raise InvalidRequest(f"workers: {workers} is not at least 1", field="workers")
    device = torch.device(device)
    bounds = shard_bounds(len(contexts), params.batch_size, shards or workers)
    n_batches = math.ceil(len(contexts) / params.batch_size)
    states: dict[int, IndexState] = {}
    files = (
        {i: shard_dir / f"shard-{a}-{b}.pt" for i, (a, b) in enumerate(bounds)}
        if (shard_dir is not None)
        else {}
    )
    for i, file in files.items():
        if file.exists():
            state = IndexState.from_state(torch.load(file, weights_only=False))
            if state is not None:
                states[i] = state
    todo = [i for i in range(len(bounds)) if i not in states]
    if todo:
        ray, started = connect(address, workers * cpus_per_worker)
        try:
            run = _ShardRun(ray, contexts, params, bounds, files, n_batches, on_progress)
            run.done = sum(s.n_batches for s in states.values())
            states.update(
                run(
                    config,
                    model_id,
                    sae_id,
                    todo,
                    workers,
                    device,
                    dtype,
                    cpus_per_worker,
                    fingerprints,
                )
            )
        finally:
            if started:
                ray.shutdown()
    return merge_states([states[i].to(device) for i in range(len(bounds))])


class _ShardRun:
    """Hands shards to actors as they come free, keeps each finished shard's state."""

    def __init__(self, ray, contexts, params, bounds, files, n_batches, on_progress):
        self.ray, self.contexts, self.params = ray, contexts, params
        self.bounds, self.files, self.n_batches = bounds, files, n_batches
        self.on_progress = on_progress
        self.done = 0

    def __call__(
        self, config, model_id, sae_id, todo, workers, device, dtype, cpus, fingerprints
    ) -> dict[int, IndexState]:
        ray = self.ray
        gpus = 1 if device.type == "cuda" else 0
        n_actors = min(workers, len(todo))
        have = ray.cluster_resources()
        for name, each in (("CPU", cpus), ("GPU", gpus)):
            if each and have.get(name, 0) < n_actors * each:
                raise InvalidRequest(
                    f"workers: {n_actors} workers need {n_actors * each:g} {name}s; the Ray "
                    f"cluster has {have.get(name, 0):g}",
                    field="workers",
                )
        worker = ray.remote(num_cpus=cpus, num_gpus=gpus)(ShardWorker)
        # On a worker, Ray makes its own GPU the only visible one: "cuda" is that GPU.
        actors = [
            worker.remote(config, model_id, sae_id, device.type, dtype, cpus)
            for _ in range(n_actors)
        ]
        try:
            try:
                found = ray.get([a.fingerprints.remote() for a in actors])
            except ray.exceptions.RayError as exc:
                raise Unavailable(
                    f"a Ray worker could not load the model: {_one_line(exc)}"
                ) from exc
            for got in found:
                if fingerprints is not None and tuple(got) != tuple(fingerprints):
                    raise Unavailable(
                        f"a Ray worker loaded other weights than the driver (model, SAE "
                        f"fingerprints {tuple(got)} != {tuple(fingerprints)}): every node "
                        f"needs the same model files"
                    )
            return self._run(actors, list(todo))
        finally:
            for actor in actors:
                ray.kill(actor)

    def _run(self, actors, queue: list[int]) -> dict[int, IndexState]:
        ray, contexts = self.ray, self.contexts
        pending = {}
        states = {}

        def submit(actor) -> None:
            i = queue.pop(0)
            a, b = self.bounds[i]
            rows = contexts.tokens[a - contexts.first : b - contexts.first]
            tokens = ray.put(np.ascontiguousarray(rows))
            pending[actor.build.remote(tokens, a, contexts.bos_id, self.params)] = (i, actor)

        for actor in actors:
            if queue:
                submit(actor)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i, actor = pending.pop(ready[0])
            try:
                state_dict = ray.get(ready[0])
            except ray.exceptions.RayError as exc:
                a, b = self.bounds[i]
                raise Unavailable(
                    f"a Ray worker failed on contexts {a}-{b}: {_one_line(exc)}"
                ) from exc
            state = IndexState.from_state(state_dict)
            assert state is not None
            states[i] = state
            if i in self.files:
                file = self.files[i]
                file.parent.mkdir(parents=True, exist_ok=True)
                torch.save(state_dict, file.with_suffix(".tmp"))
                file.with_suffix(".tmp").replace(file)
            self.done += state.n_batches
            if self.on_progress is not None:
                self.on_progress(self.done, self.n_batches)
            if queue:
                submit(actor)
        return states
