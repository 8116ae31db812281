"""The run loop: a pure function of (task, optimizer, config) that yields one result per batch.

No file I/O happens here; :mod:`bench.runner` writes what this yields. Randomness that belongs
to the harness (initial design, fallback proposals, retraining) comes from generators derived
from (seed, purpose, batch), so it does not depend on what the optimizer did and a resumed run
draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from bench.core import constants as C
from bench.core.config import RunConfig
from bench.core.optimizer import Observations, Optimizer
from bench.store.files import encode_latent
from bench.core.task import RetrainableTask, Task

# Purposes of the harness's random streams (part of the seed sequence).
_STREAM_INIT, _STREAM_FALLBACK, _STREAM_RETRAIN = 1, 2, 3


def harness_rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    """A generator owned by the harness for (seed, stream, index), independent of the optimizer."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), stream, int(index)]))


def rank_weights(scores: np.ndarray, k: float) -> np.ndarray:
    """Tripp et al.'s weights w_i = 1 / (k N + rank_i), rank 0 for the best score; k = inf is uniform.

    Returned normalised to sum to one.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if math.isinf(k):
        return np.full(n, 1.0 / n)
    ranks = np.empty(n, dtype=np.float64)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(n)
    if k == 0:  # the limit of k -> 0: 1 / rank_0 is infinite, all weight on the best point
        return (ranks == 0).astype(np.float64)
    w = 1.0 / (k * n + ranks)
    return w / w.sum()


@dataclass
class RunState:
    """Everything needed to continue a run exactly after the last completed batch."""

    batch: int  # last completed batch (0 = initial design)
    queries: int  # optimizer queries done
    latents: np.ndarray  # (N, H, W) in the current latent space
    scores: np.ndarray
    query_images: np.ndarray | None  # uint8 (Q, C, H, W) decoded images of the queries (image tasks)
    best: float
    elapsed_s: float
    signature: str
    model_version: int
    queries_since_retrain: int
    optimizer_state: dict[str, Any]
    task_state: dict[str, Any] | None
    space_mask: np.ndarray | None


@dataclass
class BatchResult:
    """What one batch produced: record rows, diagnostics and metric rows, and the state after it."""

    records: list[dict[str, Any]]
    diagnostics: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    state: RunState
    retrain_stats: dict[str, Any] | None = field(default=None)


def _to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(images, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def _from_uint8(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


def duplicate_flags(proposals: np.ndarray, existing: np.ndarray) -> np.ndarray:
    """True for proposals equal to an existing latent or to an earlier proposal in the batch."""
    width = int(np.prod(proposals.shape[1:]))
    seen = {row.tobytes() for row in existing.reshape(len(existing), width).astype(np.int64)}
    flags = np.zeros(len(proposals), dtype=bool)
    for i, row in enumerate(proposals.reshape(len(proposals), width).astype(np.int64)):
        key = row.tobytes()
        flags[i] = key in seen
        seen.add(key)
    return flags


def run(task: Task, optimizer: Optimizer, config: RunConfig, *, preset_hash: str,
        resume: RunState | None = None) -> Iterator[BatchResult]:
    """Run ``optimizer`` on ``task`` as ``config`` says, yielding after the initial design and each batch.

    With ``resume`` (the state of a previous :class:`BatchResult`), the task's model and the
    optimizer are restored and the run continues with the next batch, producing exactly the
    records an uninterrupted run would (timings aside).
    """
    retrain = config.retrain
    retraining = retrain.enabled
    if retraining and not isinstance(task, RetrainableTask):
        raise TypeError(f"task {task.name!r} has no generative model to retrain; drop the retrain options")
    needs_images = isinstance(task, RetrainableTask) and (retraining or config.metrics.every > 0)
    n_initial = config.n_initial or task.default_n_initial
    start = time.perf_counter()

    init = task.initial_data(config.seed, n_initial)
    init_images = init.images
    if needs_images and init_images is None:
        raise TypeError(f"task {task.name!r} returned no images with its initial data")

    def row_base(signature: str) -> dict[str, Any]:
        return {C.RUN_ID: config.run_id, C.TASK: config.task, C.TASK_SIGNATURE: signature,
                C.OPTIMIZER: config.label, C.PRESET_HASH: preset_hash, C.SEED: config.seed}

    def make_rows(base: dict[str, Any], latents: np.ndarray, scores: np.ndarray, *, batch: int, first_eval: int,
                  first_query: int, best: float, is_init: bool, dup: np.ndarray, fallback: bool,
                  propose_s: float, evaluate_s: float, elapsed_s: float, version: int) -> tuple[list[dict], float]:
        extra = task.diagnostics(latents)
        rows = []
        for i in range(len(latents)):
            best = max(best, float(scores[i]))
            rows.append({
                **base, C.BATCH: batch, C.EVAL: first_eval + i, C.QUERY: 0 if is_init else first_query + i,
                C.LATENT: encode_latent(latents[i], space.codebook_size), C.SCORE: float(scores[i]),
                C.BEST_SO_FAR: best, C.IS_INIT: is_init, C.IS_DUPLICATE: bool(dup[i]), C.IS_FALLBACK: fallback,
                C.PROPOSE_S: propose_s, C.EVALUATE_S: evaluate_s, C.ELAPSED_S: elapsed_s, C.MODEL_VERSION: version,
                C.REGRET: float(extra[C.REGRET][i]) if C.REGRET in extra else math.nan,
                C.HELDOUT_SCORE: float(extra[C.HELDOUT_SCORE][i]) if C.HELDOUT_SCORE in extra else math.nan,
            })
        return rows, best

    def all_images(query_images: np.ndarray | None) -> np.ndarray:
        parts = [init_images] + ([_from_uint8(query_images)] if query_images is not None and len(query_images) else [])
        return np.concatenate(parts, axis=0)

    def do_retrain(latents: np.ndarray, scores: np.ndarray, query_images: np.ndarray | None, epochs: float,
                   index: int) -> tuple[np.ndarray, dict[str, Any]]:
        assert isinstance(task, RetrainableTask)
        images = all_images(query_images)
        weights = rank_weights(scores, retrain.k)
        seed = int(harness_rng(config.seed, _STREAM_RETRAIN, index).integers(2**31))
        stats = task.fine_tune(images, weights, epochs, seed)
        return task.encode(images), stats

    if resume is None:
        signature = task.signature()
        base = row_base(signature)
        space = task.space
        latents = space.validate(init.latents)
        scores = np.asarray(init.scores, dtype=np.float64)
        query_images = np.zeros((0, *init_images.shape[1:]), dtype=np.uint8) if needs_images else None
        elapsed = time.perf_counter() - start
        rows, best = make_rows(base, latents, scores, batch=0, first_eval=0, first_query=0, best=-math.inf,
                               is_init=True, dup=duplicate_flags(latents, latents[:0]), fallback=False,
                               propose_s=0.0, evaluate_s=0.0, elapsed_s=elapsed,
                               version=getattr(task, "model_version", 0))
        stats = None
        if retraining and retrain.initial_epochs > 0:
            latents, stats = do_retrain(latents, scores, query_images, retrain.initial_epochs, 0)
        space = task.space
        state = RunState(batch=0, queries=0, latents=latents, scores=scores, query_images=query_images, best=best,
                         elapsed_s=time.perf_counter() - start, signature=signature,
                         model_version=getattr(task, "model_version", 0), queries_since_retrain=0,
                         optimizer_state=optimizer.state_dict(),
                         task_state=task.model_state() if retraining else None, space_mask=space.mask)
        yield BatchResult(rows, [], [], state, stats)
    else:
        state = resume
        if retraining:
            assert isinstance(task, RetrainableTask) and state.task_state is not None
            task.load_model_state(state.task_state)
        optimizer.load_state_dict(state.optimizer_state)
        signature = state.signature
        base = row_base(signature)
        start -= state.elapsed_s

    space = task.space
    while state.queries < config.budget:
        batch = state.batch + 1
        n = min(config.batch_size, config.budget - state.queries)
        weights = rank_weights(state.scores, retrain.k) if not math.isinf(retrain.k) else None
        data = Observations(space, state.latents, state.scores, weights, state.model_version)
        diagnostics: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        fallback = False
        optimizer.last_info = []
        try:
            proposals = space.validate(optimizer.propose(n, data), n=n)
        except Exception as exc:  # noqa: BLE001 - any optimizer failure must not kill the run
            fallback = True
            proposals = space.sample(n, harness_rng(config.seed, _STREAM_FALLBACK, batch))
            diagnostics.append({C.DIAG_BATCH: batch, C.DIAG_KIND: "fallback",
                                C.DIAG_MESSAGE: f"{type(exc).__name__}: {exc}",
                                "traceback": traceback.format_exc()})
        propose_s = time.perf_counter() - t0
        for info in optimizer.last_info:
            diagnostics.append({C.DIAG_BATCH: batch, C.DIAG_KIND: "info", C.DIAG_MESSAGE: "",
                                **{f"info_{k}": v for k, v in info.items()}})
        dup = duplicate_flags(proposals, state.latents)

        t1 = time.perf_counter()
        images = None
        if needs_images:
            assert isinstance(task, RetrainableTask)
            images = task.decode(proposals)
            new_scores = np.asarray(task.score_images(images), dtype=np.float64)
        else:
            new_scores = np.asarray(task.evaluate(proposals), dtype=np.float64)
        evaluate_s = time.perf_counter() - t1
        version = state.model_version
        rows, best = make_rows(base, proposals, new_scores, batch=batch, first_eval=len(state.scores),
                               first_query=state.queries + 1, best=state.best, is_init=False, dup=dup,
                               fallback=fallback, propose_s=propose_s, evaluate_s=evaluate_s,
                               elapsed_s=time.perf_counter() - start, version=version)

        latents = np.concatenate([state.latents, proposals])
        scores = np.concatenate([state.scores, new_scores])
        query_images = state.query_images
        if images is not None:
            query_images = np.concatenate([query_images, _to_uint8(images)])
        queries = state.queries + n
        since = state.queries_since_retrain + n

        metrics = []
        every = config.metrics.every
        if every and query_images is not None and (queries // every > state.queries // every or queries == config.budget):
            metrics = _set_metrics(task, query_images, scores[len(scores) - len(query_images):], queries,
                                   config.metrics.n_images)

        stats = None
        if retraining and since >= retrain.every and queries < config.budget:
            latents, stats = do_retrain(latents, scores, query_images, retrain.epochs, batch)
            space = task.space
            since = 0
        state = RunState(batch=batch, queries=queries, latents=latents, scores=scores, query_images=query_images,
                         best=best, elapsed_s=time.perf_counter() - start, signature=signature,
                         model_version=getattr(task, "model_version", 0), queries_since_retrain=since,
                         optimizer_state=optimizer.state_dict(),
                         task_state=task.model_state() if retraining else None, space_mask=space.mask)
        yield BatchResult(rows, diagnostics, metrics, state, stats)


def _set_metrics(task: Task, query_images: np.ndarray, query_scores: np.ndarray, at_query: int,
                 n_images: int) -> list[dict[str, Any]]:
    """Metric rows for the top-n and last-n queried images (skipped until n images exist)."""
    if len(query_images) < n_images:
        return []
    top = np.argsort(-query_scores, kind="stable")[:n_images]
    subsets = {"top": top, "last": np.arange(len(query_images) - n_images, len(query_images))}
    rows = []
    for subset, index in subsets.items():
        for row in task.set_metrics(_from_uint8(query_images[index]), subset):
            rows.append({C.METRIC_AT_QUERY: at_query, C.METRIC_SUBSET: subset, **row})
    return rows

