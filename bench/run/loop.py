"""The run loop: a pure function of (task, optimizer, config, seed) that yields one result per batch.

No file I/O happens here; :mod:`bench.run.runner` hands what this yields to the store.
Randomness that belongs to the harness (initial design, fallback proposals, retraining) comes
from generators derived from (seed, purpose, batch), so it does not depend on what the optimizer
did and a resumed run draws exactly what an uninterrupted one would.

Every batch: build :class:`~bench.core.optimizer.Observations` from the state, call ``propose``
through :func:`bench.run.guard.call_guarded`, evaluate (falling back to harness-drawn random
points when the optimizer failed), make record rows, compute metrics at checkpoints, retrain
the task's generative model when due, and snapshot the state.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

import numpy as np

from bench.core import constants as C
from bench.core.config import RunConfig
from bench.core.errors import UserError
from bench.core.optimizer import Observations, Optimizer, Proposal
from bench.core.records import encode_latent
from bench.core.space import CodeGrid, InvalidLatents
from bench.core.task import Evaluation, RetrainableTask, Task
from bench.run.guard import OptimizerFailure, ProposalTimeout, call_guarded

# Purposes of the harness's random streams (part of the seed sequence).
_STREAM_FALLBACK, _STREAM_RETRAIN = 2, 3

#: builds a fresh optimizer for a space (to replace one whose ``propose`` call timed out)
OptimizerFactory = Callable[[CodeGrid], Optimizer]


class RunFailed(Exception):
    """The run cannot go on (the optimizer crashed, timed out, or fell back too often)."""


class NotRetrainable(UserError, TypeError):
    """Weighted retraining was asked for on a task without a generative model."""


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


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] as uint8 (what the store keeps of every scored image)."""
    return np.clip(np.rint(np.asarray(images, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def from_uint8(images: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_uint8` (up to rounding)."""
    return images.astype(np.float32) / 255.0


@dataclass
class RunState:
    """Everything needed to continue a run exactly after the last completed batch."""

    batch: int  # last completed batch (0 = initial design)
    queries: int  # optimizer queries done
    latents: np.ndarray  # (N, H, W) in the current latent space
    scores: np.ndarray
    best: float
    elapsed_s: float
    signature: str
    model_version: int  # retrainings done
    queries_since_retrain: int
    optimizer_state: dict[str, Any]
    task_state: dict[str, Any] | None
    fallbacks: int = 0  # batches evaluated from fallback points
    first_error: str | None = None  # the optimizer's first failure message
    load_dependent: bool = False  # a wall-clock limit decided some proposal
    #: uint8 (Q, C, H, W) images of every query (image tasks); stored apart from the state
    query_images: np.ndarray | None = field(default=None, repr=False)


@dataclass
class BatchResult:
    """What one batch produced: record rows, diagnostics, metric rows, new images and the state after it."""

    records: list[dict[str, Any]]
    diagnostics: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    state: RunState
    retrain_stats: dict[str, Any] | None = None
    new_images: np.ndarray | None = None  # uint8 images of this batch's queries (image tasks)
    initial_images: np.ndarray | None = None  # float images of the initial design (batch 0 of image tasks)


@dataclass(frozen=True)
class _Proposed:
    latents: np.ndarray
    diagnostics: list[dict[str, Any]]
    fallback: bool
    seconds: float
    error: str | None = None
    load_dependent: bool = False
    timed_out: bool = False


class _Run:
    """One run's fixed context: task, config, record-row base and clock; methods are the loop's steps."""

    def __init__(self, task: Task, rebuild: OptimizerFactory | None, config: RunConfig, preset_hash: str) -> None:
        if config.retrain.enabled and not isinstance(task, RetrainableTask):
            raise NotRetrainable(f"task {config.task!r} has no generative model to retrain; drop the retrain options")
        self.task = task
        self.rebuild = rebuild
        self.config = config
        self.preset_hash = preset_hash
        self.clock0 = time.perf_counter()

    # --- rows -------------------------------------------------------------------------------
    def rows(self, state: RunState, latents: np.ndarray, evaluation: Evaluation, *, batch: int, first_eval: int,
             first_query: int, is_init: bool, dup: np.ndarray, proposed: _Proposed | None,
             evaluate_s: float) -> tuple[list[dict[str, Any]], float]:
        """Record rows of one evaluated batch; returns them and the new best score."""
        base = {C.RUN_ID: self.config.run_id, C.TASK: self.config.task, C.TASK_SIGNATURE: state.signature,
                C.OPTIMIZER: self.config.label, C.PRESET_HASH: self.preset_hash, C.SEED: self.config.seed,
                C.BATCH: batch, C.IS_INIT: is_init, C.IS_FALLBACK: bool(proposed and proposed.fallback),
                C.PROPOSE_S: proposed.seconds if proposed else 0.0, C.EVALUATE_S: evaluate_s,
                C.ELAPSED_S: time.perf_counter() - self.clock0, C.MODEL_VERSION: state.model_version}
        best, rows = state.best, []
        codebook_size = self.task.space.codebook_size
        for i in range(len(latents)):
            best = max(best, float(evaluation.scores[i]))
            rows.append({**base, C.EVAL: first_eval + i, C.QUERY: 0 if is_init else first_query + i,
                         C.LATENT: encode_latent(latents[i], codebook_size), C.SCORE: float(evaluation.scores[i]),
                         C.BEST_SO_FAR: best, C.IS_DUPLICATE: bool(dup[i]),
                         **{key: float(evaluation.extras[key][i]) if key in evaluation.extras else math.nan
                            for key in C.EXTRA_COLUMNS}})
        return rows, best

    def evaluate(self, latents: np.ndarray) -> tuple[Evaluation, float]:
        t0 = time.perf_counter()
        evaluation = self.task.evaluate(latents)
        if len(evaluation) != len(latents):
            raise RuntimeError(f"task {self.config.task!r} returned {len(evaluation)} scores for {len(latents)} latents")
        return evaluation, time.perf_counter() - t0

    # --- the initial design -------------------------------------------------------------------
    def initial(self, optimizer: Optimizer) -> BatchResult:
        config, task = self.config, self.task
        init = task.initial_data(config.seed, config.n_initial or task.default_n_initial)
        if config.retrain.enabled and init.images is None:
            raise RuntimeError(f"task {config.task!r} returned no images with its initial data")
        latents = task.space.validate(init.latents)
        evaluation = Evaluation(np.asarray(init.scores, dtype=np.float64))
        images = None if init.images is None else np.zeros((0, *init.images.shape[1:]), dtype=np.uint8)
        state = RunState(batch=0, queries=0, latents=latents, scores=evaluation.scores, best=-math.inf,
                         elapsed_s=0.0, signature=task.signature(), model_version=0, queries_since_retrain=0,
                         optimizer_state={}, task_state=None, query_images=images)
        rows, best = self.rows(state, latents, self._initial_extras(latents, evaluation), batch=0, first_eval=0,
                               first_query=0, is_init=True, dup=duplicate_flags(latents, latents[:0]),
                               proposed=None, evaluate_s=0.0)
        stats = None
        if config.retrain.enabled and config.retrain.initial_epochs > 0:
            latents, stats = self.retrain(latents, evaluation.scores, init.images, images,
                                          config.retrain.initial_epochs, 0)
            state.model_version = 1
        state = replace(state, latents=latents, best=best, elapsed_s=time.perf_counter() - self.clock0,
                        optimizer_state=optimizer.state_dict(), task_state=self._task_state())
        self.init_images = init.images
        return BatchResult(rows, [], [], state, stats, initial_images=init.images)

    def _initial_extras(self, latents: np.ndarray, scores: Evaluation) -> Evaluation:
        """Initial points keep their own scores (of the original images); their extras (held-out
        score, regret, ...) are the task's for their latents."""
        return Evaluation(scores.scores, None, self.task.evaluate(latents).extras)

    def _task_state(self) -> dict[str, Any] | None:
        if self.config.retrain.enabled:
            assert isinstance(self.task, RetrainableTask)
            return self.task.model_state()
        return None

    def restore(self, optimizer: Optimizer, state: RunState) -> None:
        """Bring the task's model and the optimizer back to ``state`` (resume) and set the clock."""
        if self.config.retrain.enabled:
            assert isinstance(self.task, RetrainableTask) and state.task_state is not None
            self.task.load_model_state(state.task_state)
        optimizer.load_state_dict(state.optimizer_state)
        init = self.task.initial_data(self.config.seed, self.config.n_initial or self.task.default_n_initial)
        self.init_images = init.images
        self.clock0 = time.perf_counter() - state.elapsed_s

    # --- one optimizer batch ------------------------------------------------------------------
    def propose(self, optimizer: Optimizer, state: RunState, n: int, batch: int) -> tuple[_Proposed, Optimizer]:
        """The optimizer's proposals, or harness-drawn fallback points when it failed."""
        space = self.task.space
        weights = rank_weights(state.scores, self.config.retrain.k) if not math.isinf(self.config.retrain.k) else None
        data = Observations(space, state.latents, state.scores, weights, state.model_version, self.task.codebook(),
                            self.task.code_prior())
        limits = self.config.limits
        t0 = time.perf_counter()
        try:
            proposal = call_guarded(lambda: optimizer.propose(n, data), limits.time_limit)
            latents = _check_proposal(proposal, space, n)
            diagnostics = [{C.DIAG_BATCH: batch, C.DIAG_KIND: "info", C.DIAG_MESSAGE: "",
                            **{f"info_{k}": v for k, v in info.items()}} for info in proposal.info]
            return _Proposed(latents, diagnostics, False, time.perf_counter() - t0,
                             load_dependent=proposal.load_dependent), optimizer
        except (OptimizerFailure, InvalidLatents, ProposalTimeout) as exc:
            timed_out = isinstance(exc, ProposalTimeout)
            if isinstance(exc, OptimizerFailure) and exc.fatal:
                raise RunFailed(f"optimizer {self.config.optimizer!r} stopped the run: {exc.message}") from None
            if timed_out and limits.on_timeout == "fail":
                raise RunFailed(f"optimizer {self.config.optimizer!r}: {exc} (proposal time limit; "
                                "raise limits.time_limit_s or set limits.on_timeout = 'fallback')") from None
            if timed_out:  # the abandoned call may still mutate that object: continue with a restored copy
                if self.rebuild is None:
                    raise RunFailed(f"optimizer {self.config.optimizer!r}: {exc}; no way to rebuild it") from None
                optimizer = self.rebuild(space)
                optimizer.load_state_dict(state.optimizer_state)
            message = str(exc) if not isinstance(exc, OptimizerFailure) else exc.message
            kind = "timeout" if timed_out else "fallback"
            trace = exc.trace if isinstance(exc, OptimizerFailure) else ""
            latents = space.sample(n, harness_rng(self.config.seed, _STREAM_FALLBACK, batch))
            diagnostics = [{C.DIAG_BATCH: batch, C.DIAG_KIND: kind, C.DIAG_MESSAGE: message, "traceback": trace}]
            return _Proposed(latents, diagnostics, True, time.perf_counter() - t0, error=message,
                             load_dependent=timed_out, timed_out=timed_out), optimizer

    def step(self, optimizer: Optimizer, state: RunState) -> tuple[BatchResult, Optimizer]:
        config = self.config
        batch = state.batch + 1
        n = min(config.batch_size, config.budget - state.queries)
        proposed, optimizer = self.propose(optimizer, state, n, batch)
        state = self._count_fallback(state, proposed)
        evaluation, evaluate_s = self.evaluate(proposed.latents)
        rows, best = self.rows(state, proposed.latents, evaluation, batch=batch, first_eval=len(state.scores),
                               first_query=state.queries + 1, is_init=False,
                               dup=duplicate_flags(proposed.latents, state.latents), proposed=proposed,
                               evaluate_s=evaluate_s)
        keeps_images = state.query_images is not None and evaluation.images is not None
        new_images = to_uint8(evaluation.images) if keeps_images else None
        latents = np.concatenate([state.latents, proposed.latents])
        scores = np.concatenate([state.scores, evaluation.scores])
        query_images = state.query_images
        if new_images is not None and query_images is not None:
            query_images = np.concatenate([query_images, new_images])
        queries, since = state.queries + n, state.queries_since_retrain + n
        metrics = self.metrics(query_images, scores, state.queries, queries)
        stats, version = None, state.model_version
        if config.retrain.enabled and since >= config.retrain.every and queries < config.budget:
            latents, stats = self.retrain(latents, scores, self.init_images, query_images, config.retrain.epochs, batch)
            since, version = 0, version + 1
        state = replace(state, batch=batch, queries=queries, latents=latents, scores=scores, best=best,
                        elapsed_s=time.perf_counter() - self.clock0, model_version=version,
                        queries_since_retrain=since, optimizer_state=optimizer.state_dict(),
                        task_state=self._task_state(), query_images=query_images)
        return BatchResult(rows, proposed.diagnostics, metrics, state, stats, new_images), optimizer

    def _count_fallback(self, state: RunState, proposed: _Proposed) -> RunState:
        """Count a fallback batch; fail the run once its share can no longer stay under the limit."""
        if not proposed.fallback and not proposed.load_dependent:
            return state
        state = replace(state, fallbacks=state.fallbacks + int(proposed.fallback),
                        first_error=state.first_error or proposed.error,
                        load_dependent=state.load_dependent or proposed.load_dependent)
        allowed = self.config.limits.max_fallback_share * self.config.n_batches
        if state.fallbacks > allowed:
            raise RunFailed(f"optimizer {self.config.optimizer!r} failed in {state.fallbacks} of "
                            f"{self.config.n_batches} batches (limit: {self.config.limits.max_fallback_share:.0%}); "
                            f"first error: {state.first_error}")
        return state

    # --- metrics and retraining -----------------------------------------------------------------
    def metrics(self, query_images: np.ndarray | None, scores: np.ndarray, before: int, after: int) -> list[dict]:
        every = self.config.metrics.every
        if not every or query_images is None:
            return []
        if not (after // every > before // every or after == self.config.budget):
            return []
        return _set_metrics(self.task, query_images, scores[len(scores) - len(query_images):], after,
                            self.config.metrics.n_images)

    def retrain(self, latents: np.ndarray, scores: np.ndarray, init_images: np.ndarray | None,
                query_images: np.ndarray | None, epochs: float, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Fine-tune on every image so far with rank weights, then re-encode them all."""
        task = self.task
        assert isinstance(task, RetrainableTask) and init_images is not None
        parts = [init_images] + ([from_uint8(query_images)] if query_images is not None and len(query_images) else [])
        images = np.concatenate(parts, axis=0)
        seed = int(harness_rng(self.config.seed, _STREAM_RETRAIN, index).integers(2**31))
        stats = task.fine_tune(images, rank_weights(scores, self.config.retrain.k), epochs, seed)
        return task.space.validate(task.encode(images)), stats


def _check_proposal(proposal: Any, space: CodeGrid, n: int) -> np.ndarray:
    """The proposal's latents as a validated (n, H, W) int64 array; :class:`InvalidLatents` otherwise."""
    if not isinstance(proposal, Proposal):
        raise InvalidLatents(f"propose must return a bench.core.optimizer.Proposal, got {type(proposal).__name__}")
    latents = np.asarray(proposal.latents)
    if latents.dtype.kind == "f":  # NaN or fractional codes are not codes
        if not np.all(np.isfinite(latents)) or not np.all(latents == np.round(latents)):
            raise InvalidLatents("proposed latents hold NaN, infinite or fractional codes")
        latents = latents.astype(np.int64)
    return space.validate(latents, n=n)


def _set_metrics(task: Task, query_images: np.ndarray, query_scores: np.ndarray, at_query: int,
                 n_images: int) -> list[dict[str, Any]]:
    """Metric rows for the top-n and last-n queried images (skipped until n images exist)."""
    if len(query_images) < n_images:
        return []
    top = np.argsort(-query_scores, kind="stable")[:n_images]
    subsets = {"top": top, "last": np.arange(len(query_images) - n_images, len(query_images))}
    rows = []
    for subset, index in subsets.items():
        for row in task.set_metrics(from_uint8(query_images[index]), subset):
            rows.append({C.METRIC_AT_QUERY: at_query, C.METRIC_SUBSET: subset, **row})
    return rows


def run(task: Task, optimizer: Optimizer, config: RunConfig, *, preset_hash: str, resume: RunState | None = None,
        rebuild: OptimizerFactory | None = None) -> Iterator[BatchResult]:
    """Run ``optimizer`` on ``task`` as ``config`` says, yielding after the initial design and each batch.

    With ``resume`` (the state of a previous :class:`BatchResult`, its ``query_images``
    included), the task's model and the optimizer are restored and the run continues with the
    next batch, producing exactly the records an uninterrupted run would (timings aside).
    Raises :class:`RunFailed` when the optimizer crashes, times out (``limits.on_timeout =
    "fail"``) or falls back in more than ``limits.max_fallback_share`` of the batches.
    ``rebuild(space)`` makes a fresh optimizer to replace one whose call timed out
    (``limits.on_timeout = "fallback"``); it is restored from the last state.
    """
    loop = _Run(task, rebuild, config, preset_hash)
    if resume is None:
        first = loop.initial(optimizer)
        yield first
        state = first.state
    else:
        loop.restore(optimizer, resume)
        state = resume
    while state.queries < config.budget:
        result, optimizer = loop.step(optimizer, state)
        yield result
        state = result.state
