"""Exact acquisition over a tree ensemble: Mišić's MILP built directly as a sparse HiGHS model.

Variables: one binary per (position, group of interchangeable codes) with exactly one group per
position; one continuous weight per leaf with the weights of each tree summing to one; for the
exploration term a distance variable (and, as a penalty, one selector binary per observed point).
Every split gets one row per side,

    sum(left leaves)  <= sum(x over groups going left)      (or  <= 1 - sum(x going right))
    sum(right leaves) <= 1 - sum(x over groups going left)  (or  <= sum(x going right)),

whichever form has fewer nonzeros. Codes that go the same way at every split of a position and
that no observed point, trust-region centre or excluded latent uses there ("free" codes) are
merged into one binary: they are indistinguishable to the objective and to every row. An
observed (under a bonus) or excluded code whose class has a free code is dominated by it (same
mean, never nearer to an observed point, never excluded) and gets no binary; the others get one
binary each, so a no-good cut removes exactly one excluded latent. Positions that no split tests
are dropped (and set to the warm-start code) when no distance term or exclusion needs them.

No wall-clock time decides an answer unless asked: the limits are HiGHS's node count and the
number of lazy rounds; an opt-in time limit marks the result ``time_limited``. Every answer is
re-scored with the ensemble, and the reported objective and gap are those of the re-scored value.

The objective maximised is ``mean(z) + exploration_weight * d`` where ``d`` is the Hamming
distance to the nearest observed latent ("bonus": rows ``d + sum_p x[p, z_ip] <= P``, one per
point with P nonzeros), or ``mean(z) - exploration_weight * d`` ("penalty", big-M selection of
the nearest point), or the mean alone ("none"). A trust region keeps the solution within a
Hamming radius of one centre, or of at least one of several centres.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from bench.optimizers.tree_ensemble import TreeEnsemble

EXPLORATION_MODES = ("none", "bonus", "penalty")
#: how a distance bonus is solved: one MILP with a distance variable, or one MILP per distance level
ACQUISITION_ROUTES = ("direct", "levels")
#: models this large get HiGHS's interior-point root LP (a rule on size, never on time): at the
#: paper's size (800 depth-2 trees, N = 2,000-10,000: 220k-330k nonzeros) dual simplex spent most
#: of each solve on the root LP (smile-synthetic encodings, N = 10,000: 238 s against 33 s);
#: smaller models (100 trees at N = 100-500: 12k-85k) keep simplex
IPM_ROOT_FROM_NONZEROS = 100_000
#: distance rows (a rule on the number of observed points): every row in one MILP up to this many
#: points, else lazily from the ``LAZY_ROWS`` nearest to the warm start, adding up to as many per
#: round. Measured at 8x8x256 with the interior-point root: one MILP with every row solves
#: N = 2,000 in 30-35 s where 32 lazy rows took 101-190 s; at N = 10,000, 512 lazy rows took
#: 16-19 s against 22-34 s with 32 and 15-36 s with every row
ALL_DISTANCE_ROWS_UP_TO = 2_000
LAZY_ROWS = 512
#: HiGHS may restart its root (presolve again after fixing columns) only on models this large (a
#: rule on size, like the root LP's): on smaller ones the restarts only re-proved a bound already
#: a hair from the tolerance (clustered codes at 8x8x256: N = 100 3.8 s -> 1.8 s without them,
#: N = 500 1.8 s -> 1.35 s; other small cases equal), while at paper size turning them off
#: tripled `bench perf paper`'s median solve (9.5 s -> 29 s per query)
RESTART_FROM_NONZEROS = 100_000
#: models this large are solved LP first (a rule on size): the LP relaxation (interior point and
#: crossover) proves the optimum outright when it is integral, and otherwise the MILP over its
#: support gives HiGHS a start near the optimum (see :func:`_relaxation`)
LP_FIRST_FROM_NONZEROS = 100_000
#: node limit of the MILP over the relaxation's support: it only supplies a start, so its limit
#: cannot change the answer, only how soon HiGHS proves it
SUPPORT_MILP_MAX_NODES = 1_000
#: HiGHS options of a MILP solved LP first: without the RINS and RENS sub-MIPs, which at the root
#: re-searched near the start the support MILP had just found (15-25 s of a 40-65 s round).
#: Measured on 17 problems captured from two `bench perf paper` runs: the same answers, 301 s ->
#: 256 s on seven (two of them 55 -> 27 s and 41 -> 29 s) and 416 s -> 403 s on ten
NO_SUB_MIP_HEURISTICS = {"mip_heuristic_run_rins": False, "mip_heuristic_run_rens": False}
#: how far a binary may lie from 0 or 1 in the relaxation and still count as integral
INTEGRALITY_TOLERANCE = 1e-6
#: relative tolerance when comparing a solver's claimed value with the re-scored one
VALUE_TOLERANCE = 1e-5


class AcquisitionTimeLimit(RuntimeError):
    """The opt-in wall-clock limit stopped a solve before any feasible point: load-dependent."""


class AcquisitionInfeasible(RuntimeError):
    """HiGHS proved that no latent satisfies the model's constraints."""


@dataclass
class MilpResult:
    """Outcome of one acquisition solve.

    ``objective`` is the returned latent's acquisition value re-scored with the ensemble (mean
    plus exploration term over all observed points), ``bound`` the solver's proven upper bound,
    ``gap`` the relative gap between them; ``mean`` and ``distance`` are the latent's.
    ``time_limited`` says that the opt-in wall-clock limit stopped a solve (the answer then
    depends on machine load); ``model_value`` and ``choice`` are internal (the latent's value in the
    last model, and the codes each position could take for the same value). ``solve_s`` is
    HiGHS's run; ``build_s`` everything else (building the
    model, handing it over, decoding the solution), summed over lazy rounds. ``status`` is
    HiGHS's model status text ("Optimal", "Solution limit reached" for the node limit, "Time limit
    reached", ...), "Lazy round limit reached", "Gap not closed" (HiGHS said optimal but the
    re-scored value misses the bound), or "trivial" when the model had no decision left.
    """

    latent: np.ndarray
    status: str
    objective: float
    bound: float
    gap: float
    solve_s: float
    build_s: float
    mean: float
    distance: float
    n_vars: int = 0
    n_binaries: int = 0
    n_rows: int = 0
    n_nonzeros: int = 0
    model_value: float = math.nan
    time_limited: bool = False
    choice: list[np.ndarray] = field(default_factory=list, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def optimal(self) -> bool:
        """Whether the solver proved optimality (within its MIP gap)."""
        return self.status in ("Optimal", "trivial")

    def info(self) -> dict[str, Any]:
        """Plain-dict summary for ``Proposal.info``."""
        return {"status": self.status, "objective": self.objective, "bound": self.bound, "gap": self.gap,
                "solve_s": self.solve_s, "build_s": self.build_s, "pred_mean": self.mean,
                "distance": self.distance, "n_vars": self.n_vars, "n_binaries": self.n_binaries,
                "n_rows": self.n_rows, "n_nonzeros": self.n_nonzeros, "time_limited": self.time_limited,
                **{k: self.extra[k] for k in ("lazy_rounds", "distance_rows", "nodes", "levels") if k in self.extra}}


def hamming_to_nearest(latent: np.ndarray, points: np.ndarray) -> float:
    """Hamming distance from one flat latent to the nearest of ``points`` (n, P); P if empty."""
    if len(points) == 0:
        return float(latent.shape[-1])
    return float((points != latent[None, :]).sum(axis=1).min())


def acquisition_value(ensemble: TreeEnsemble, latents: np.ndarray, *, observed: np.ndarray | None,
                      exploration: str, exploration_weight: float) -> np.ndarray:
    """The objective the MILP maximises, evaluated directly on flat latents (n, P)."""
    latents = np.atleast_2d(np.asarray(latents, dtype=np.int64))
    value = ensemble.predict(latents)
    if exploration != "none" and observed is not None and len(observed):
        d = np.array([hamming_to_nearest(z, observed) for z in latents])
        value = value + (exploration_weight if exploration == "bonus" else -exploration_weight) * d
    return value


class _Columns:
    """Accumulates columns (variables) with cost, bounds and integrality; hands out their indices."""

    def __init__(self) -> None:
        self.cost: list[float] = []
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.integer: list[bool] = []

    @property
    def n(self) -> int:
        return len(self.cost)

    def add(self, cost: Any, lower: float, upper: float, integer: bool) -> np.ndarray:
        """Append ``len(cost)`` columns sharing bounds and integrality; return their indices."""
        cost = np.atleast_1d(np.asarray(cost, dtype=np.float64))
        first = self.n
        self.cost.extend(cost.tolist())
        self.lower.extend([lower] * len(cost))
        self.upper.extend([upper] * len(cost))
        self.integer.extend([integer] * len(cost))
        return np.arange(first, self.n)


class _Rows:
    """Accumulates sparse rows ``lower <= a.x <= upper``."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.lower: list[float] = []
        self.upper: list[float] = []

    def add(self, cols: np.ndarray, vals: np.ndarray, lower: float, upper: float) -> None:
        r = len(self.lower)
        self.rows.append(r)
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.asarray(vals, dtype=np.float64))
        self.lower.append(lower)
        self.upper.append(upper)

    def matrix(self, n_cols: int) -> sp.csr_matrix:
        lengths = [len(c) for c in self.cols]
        row_ids = np.repeat(np.arange(len(self.cols)), lengths)
        cols = np.concatenate(self.cols) if self.cols else np.empty(0, dtype=np.int64)
        vals = np.concatenate(self.vals) if self.vals else np.empty(0)
        m = sp.csr_matrix((vals, (row_ids, cols)), shape=(len(self.lower), n_cols))
        m.sum_duplicates()
        return m


def solve_acquisition(ensemble: TreeEnsemble, allowed: list[np.ndarray], n_codes: int, *,
                      observed: np.ndarray | None = None, exploration: str = "none",
                      exploration_weight: float = 0.0, trust_centers: np.ndarray | None = None,
                      trust_radius: int | None = None, exclude: np.ndarray | None = None,
                      warm_start: np.ndarray | None = None, max_nodes: int | None = None,
                      time_limit: float | None = None, mip_gap: float = 1e-4, mip_abs_gap: float = 1e-6,
                      seed: int = 0, threads: int = 1, rng: np.random.Generator | None = None,
                      lazy_rows: int | None = None, max_lazy_rounds: int = 200, route: str = "direct") -> MilpResult:
    """Maximise the acquisition over latents whose position ``p`` takes a code in ``allowed[p]``.

    ``observed`` (n, P) are the points of the distance term; ``trust_centers`` (m, P) with
    ``trust_radius`` restrict the search to a Hamming ball around at least one centre;
    ``exclude`` (e, P) are latents the result must differ from (exactly: no other latent is
    removed). ``warm_start`` (P,) seeds the solver and fills positions the model does not need.
    Codes within a merged group are picked with ``rng`` (else the smallest), preferring the
    warm-start code.

    Limits: ``max_nodes`` (HiGHS branch-and-bound nodes per solve) and ``max_lazy_rounds`` are
    deterministic; ``time_limit`` (s per solve, default none) is an opt-in safety net whose
    firing makes the result depend on machine load (``MilpResult.time_limited``).

    With a distance bonus and more than ``lazy_rows`` observed points, distance rows are added
    lazily: the model starts with the ``lazy_rows`` points nearest to the warm start (a
    relaxation: fewer rows can only overestimate the distance), and each round adds the points
    found nearer to the solution than the model believed (after trying the other latents of the
    solution's choice, see :func:`_farthest_in_choice`, and those with the same leaves, see
    :func:`_same_leaves`), until none is (then the solution and the bound hold for all points).
    ``lazy_rows=0`` builds every row at once; the default (None) does so up to
    ``ALL_DISTANCE_ROWS_UP_TO`` observed points and uses ``LAZY_ROWS`` beyond.

    ``route`` picks how a distance bonus is solved: "direct" (one MILP with the distance variable,
    the reference), "levels" (one pure-ensemble MILP per distance level, see
    :func:`_solve_by_levels`; same optimum, faster on some large problems and slower on
    others). Without a bonus both routes are the same MILP.

    The returned latent is re-scored with the ensemble: ``objective`` is its true acquisition
    value, ``gap`` is recomputed from it and the proven bound, and a solver answer worth less
    than the solver claimed raises ``RuntimeError``.
    """
    if route not in ACQUISITION_ROUTES:
        raise ValueError(f"route must be one of {ACQUISITION_ROUTES}, got {route!r}")
    start = time.perf_counter()
    n_pos = len(allowed)
    observed_arr = _rows_or_empty(observed, n_pos)
    if lazy_rows is None:
        lazy_rows = 0 if len(observed_arr) <= ALL_DISTANCE_ROWS_UP_TO else LAZY_ROWS
    lazy = _Lazy(observed_arr, np.unique(_rows_or_empty(exclude, n_pos), axis=0), lazy_rows,
                 max_lazy_rounds, dict(trust_centers=trust_centers, trust_radius=trust_radius, max_nodes=max_nodes,
                                       time_limit=time_limit, mip_gap=mip_gap, mip_abs_gap=mip_abs_gap, seed=seed,
                                       threads=threads, rng=rng))
    bonus = exploration == "bonus" and exploration_weight != 0.0 and len(observed_arr) > 0
    if route == "levels" and bonus:
        result = _solve_by_levels(ensemble, allowed, n_codes, lazy, exploration_weight, warm_start)
    else:
        result = lazy.solve(ensemble, allowed, n_codes, exploration, exploration_weight, warm_start)
        result.extra["route"] = "direct"
        _rescore(result, ensemble, observed_arr, exploration, exploration_weight, mip_gap, mip_abs_gap)
    result.build_s = time.perf_counter() - start - result.solve_s
    return result


@dataclass
class _Lazy:
    """One acquisition solved by MILPs over a growing set of distance rows and exact exclusions.

    With a distance bonus and more than ``lazy_rows`` observed points, the model starts with the
    ``lazy_rows`` points nearest to the warm start (a relaxation: fewer rows can only
    overestimate the distance) and each round adds points found nearer to the solution than
    the model believed, until none is. A solution standing only for excluded latents makes
    those latents exact (own columns, no-good cuts) for the next round.
    """

    observed: np.ndarray
    exclude: np.ndarray
    lazy_rows: int
    max_lazy_rounds: int
    options: dict[str, Any]
    #: totals over every MILP this acquisition solved (several per call on the "levels" route)
    totals: dict[str, Any] = field(default_factory=lambda: {"solve_s": 0.0, "rounds": 0, "nodes": 0,
                                                            "time_limited": False})

    def solve(self, ensemble: TreeEnsemble, allowed: list[np.ndarray], n_codes: int, exploration: str,
              weight: float, warm_start: np.ndarray | None, distance_floor: int | None = None) -> MilpResult:
        """Solve to the end of the lazy loop (not re-scored). With ``distance_floor`` D the
        distance is fixed at D: the best mean among latents at least D from every observed point.

        A level gets every distance row at once and an interior-point root LP: measured on 800
        depth-2 trees at N = 2,000, lazy rows needed ~60 MILP rounds, and dual simplex spent a
        minute on the root LP that the interior-point method solves in 2 s."""
        bonus = exploration == "bonus" and weight != 0.0
        lazy = bonus and 0 < self.lazy_rows < len(self.observed) and distance_floor is None
        level_options = {} if distance_floor is None else {"distance_floor": distance_floor, "lp_solver": "ipm"}
        active = np.ones(len(self.observed), dtype=bool)
        if lazy:
            anchor = np.array([a[0] for a in allowed]) if warm_start is None else np.asarray(warm_start).reshape(-1)
            nearest = np.argsort((self.observed != anchor[None, :]).sum(axis=1), kind="stable")
            active[:] = False
            active[nearest[:self.lazy_rows]] = True
        pinned = np.zeros(len(self.exclude), dtype=bool)  # excluded latents the model tells apart exactly
        rounds = nodes = 0
        solve_s, time_limited = 0.0, False
        while True:
            rounds += 1
            result = _solve_checked(ensemble, allowed, n_codes, observed=self.observed[active],
                                    exclude=self.exclude[pinned], warm_start=warm_start, exploration=exploration,
                                    exploration_weight=weight, **level_options, **self.options)
            solve_s += result.solve_s
            nodes += int(result.extra.get("nodes", 0))
            time_limited = time_limited or result.time_limited
            latent, covered = _representative(result, self.exclude)
            if latent is None:  # every latent the solution stands for is excluded: tell them apart
                if rounds >= self.max_lazy_rounds:
                    raise RuntimeError(f"acquisition MILP: no admissible latent after {rounds} rounds "
                                       "(max_lazy_rounds)")
                pinned |= covered
                continue
            if lazy:
                latent = self._keep_claim(ensemble.compiled(n_codes), allowed, result, latent)
            true_d = (self.observed != latent[None, :]).sum(axis=1)
            result.latent = latent
            if not lazy or not (true_d < result.distance - 1e-9).any():
                break
            if rounds >= self.max_lazy_rounds:
                result.status = "Lazy round limit reached"
                break
            # add the violated points and, pre-emptively, the inactive ones just as near: the next
            # solutions tend to lie next to this one
            near = np.flatnonzero(~active & (true_d <= result.distance + 1))
            active[near[np.argsort(true_d[near], kind="stable")[:self.lazy_rows]]] = True
            warm_start = latent
        for key, value in (("solve_s", solve_s), ("rounds", rounds), ("nodes", nodes)):
            self.totals[key] += value
        self.totals["time_limited"] = self.totals["time_limited"] or time_limited
        result.solve_s, result.time_limited = solve_s, time_limited
        result.extra.update({"lazy_rounds": rounds, "distance_rows": int(active.sum()), "nodes": nodes,
                             "exact_exclusions": int(pinned.sum())})
        return result


    def _keep_claim(self, comp: Any, allowed: list[np.ndarray], result: MilpResult, latent: np.ndarray) -> np.ndarray:
        """``latent``, or when an observed point lies nearer to it than the model claimed
        (``result.distance``), a latent worth the same mean that lies as far as claimed: first
        another of the solution's choice (:func:`_farthest_in_choice`), then one with the same
        leaves (:func:`_same_leaves`, :func:`_far_pick`); the nearest choice found otherwise."""

        def keeps_claim(z: np.ndarray) -> bool:
            return bool(((self.observed != z[None, :]).sum(axis=1) >= result.distance - 1e-9).all())

        if keeps_claim(latent):
            return latent
        latent = _farthest_in_choice(latent, result.choice, self.observed, self.exclude)
        if keeps_claim(latent):
            return latent
        same = _same_leaves(comp, allowed, latent, _rows_or_empty(self.options.get("trust_centers"), len(allowed)))
        twin = _far_pick(latent, same, self.observed, self.exclude, result.distance,
                         threads=self.options["threads"], seed=self.options["seed"])
        if twin is None:
            return latent
        result.extra["same_leaves_repair"] = True
        return twin


def _representative(result: MilpResult, exclude: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """A latent of ``result.choice`` that is not excluded, preferring ``result.latent``; and which
    excluded latents the choice covers. None when it covers only excluded latents.

    Every latent of the choice has the same model value (same groups, and free codes match no
    distance or trust-region row), so any of them will do.
    """
    choice = result.choice
    covered = np.all([np.isin(exclude[:, p], codes) for p, codes in enumerate(choice)], axis=0) \
        if len(exclude) else np.zeros(0, dtype=bool)
    if not covered.any():
        return result.latent, covered
    taken = {z.tobytes() for z in exclude[covered]}
    if math.prod(len(codes) for codes in choice) <= len(taken):
        return None, covered
    # Walk the choice from the decoded latent on; at most len(taken) + 1 steps find a free one.
    options = [np.concatenate([[z], codes[codes != z]]) for z, codes in zip(result.latent, choice)]
    for candidate in itertools.product(*options):
        latent = np.asarray(candidate, dtype=np.int64)
        if latent.tobytes() not in taken:
            return latent, covered
    return None, covered


def _same_leaves(comp: Any, allowed: list[np.ndarray], latent: np.ndarray, centers: np.ndarray) -> list[np.ndarray]:
    """Per position, the allowed codes that go ``latent``'s way at every split on its paths and
    match the same trust-region centres: any mix of them reaches ``latent``'s leaf in every tree
    (same mean) and keeps its trust rows.

    The model tells apart the codes of the observed points it has rows for, so its choice can
    miss the pick that is far from the points it has no row for. Measured at 8x8x256, N = 10,000
    (random codes): the next round's answer had the same leaves as this one's and differed from
    it in 15 positions; finding it here saves that round.
    """
    nodes = comp.splits_on_path(latent)
    feature = comp.feature[nodes]
    same = []
    for p, codes in enumerate(allowed):
        on_p = nodes[feature == p]
        keep = (comp.left_mask[on_p][:, codes] == comp.left_mask[on_p, latent[p]][:, None]).all(axis=0)
        if len(centers):
            keep &= (codes == latent[p]) if latent[p] in centers[:, p] else ~np.isin(codes, centers[:, p])
        keep |= codes == latent[p]
        same.append(codes[keep])
    return same


def _far_pick(latent: np.ndarray, same: list[np.ndarray], observed: np.ndarray, exclude: np.ndarray,
              distance: float, *, threads: int, seed: int) -> np.ndarray | None:
    """A latent whose position ``p`` takes a code of ``same[p]``, at Hamming distance >=
    ``distance`` from every observed point and not excluded; None if there is none (or HiGHS
    finds none within ``SUPPORT_MILP_MAX_NODES`` nodes): a small feasibility MILP.
    """
    free = np.flatnonzero([len(codes) > 1 for codes in same])
    built = _far_pick_model(same, free, observed, exclude, math.floor(len(same) - distance + 1e-9))
    if built is None:
        return None
    model, col_of = built
    h = _loaded_highs(model.highs_lp(), {"output_flag": False, "threads": int(threads), "random_seed": int(seed),
                                         "mip_max_nodes": SUPPORT_MILP_MAX_NODES})
    h.run()
    if h.getInfo().primal_solution_status != 2:
        return None
    x = np.asarray(h.getSolution().col_value)
    pick = np.array([codes[0] for codes in same])
    for p in free:
        pick[p] = same[p][int(np.argmax(x[col_of[p, same[p]]]))]
    return pick


def _far_pick_model(same: list[np.ndarray], free: np.ndarray, observed: np.ndarray, exclude: np.ndarray,
                    cap: int) -> tuple[_Model, np.ndarray] | None:
    """One binary per code of each ``free`` position; per observed point that could match more
    than ``cap`` positions, a cap on its matches; a no-good cut per excluded latent of the
    classes. The model and its column per (position, code), -1 where there is none; None when
    the positions with one code already break a cap or are excluded."""
    fixed = np.ones(len(same), dtype=bool)
    fixed[free] = False
    fixed_codes = np.array([codes[0] for codes in same])[fixed]
    fixed_matches = (observed[:, fixed] == fixed_codes[None, :]).sum(axis=1)
    if (fixed_matches > cap).any():
        return None
    columns, rows = _Columns(), _Rows()
    width = int(max(max(codes.max() for codes in same), observed.max(initial=0), exclude.max(initial=0))) + 1
    col_of = np.full((len(same), width), -1, dtype=np.int64)
    for p in free:
        col_of[p, same[p]] = columns.add(np.zeros(len(same[p])), 0.0, 1.0, True)
        rows.add(col_of[p, same[p]], np.ones(len(same[p])), 1.0, 1.0)
    cols = col_of[free[None, :], observed[:, free]]
    for i in np.flatnonzero(fixed_matches + (cols >= 0).sum(axis=1) > cap):
        rows.add(cols[i][cols[i] >= 0], np.ones(int((cols[i] >= 0).sum())), -np.inf, float(cap - fixed_matches[i]))
    for z in exclude:
        if (z[fixed] == fixed_codes).all() and (col_of[free, z[free]] >= 0).all():
            if len(free) == 0:
                return None
            rows.add(col_of[free, z[free]], np.ones(len(free)), -np.inf, len(free) - 1.0)
    return _Model(columns, rows, 0.0, np.empty(0, dtype=np.int64), 0, -1, np.empty(0, dtype=np.int64), set()), col_of


def _farthest_in_choice(latent: np.ndarray, choice: list[np.ndarray], observed: np.ndarray,
                        exclude: np.ndarray, max_sweeps: int = 10) -> np.ndarray:
    """The latent of ``choice`` (same model value) reached from ``latent`` by one-code changes that
    raise the distance to the nearest observed point, or leave it and lower how many points are
    that near; ``latent`` itself when that ends on an excluded latent. With lazy rows the model
    merges codes of points it has no row for, so one pick of the choice can be nearer to such a
    point than another: measured at N = 10,000, the right pick saves a round."""
    z = latent.copy()
    d = (observed != z[None, :]).sum(axis=1)
    for _ in range(max_sweeps):
        changed = False
        for p, codes in enumerate(choice):
            if len(codes) < 2:
                continue
            near = d <= d.min() + 2  # farther points stay above any new minimum
            base = d[near] - (observed[near, p] != z[p])
            moved = base[:, None] + (observed[near, p][:, None] != codes[None, :])  # (near, codes)
            lowest = moved.min(axis=0)
            key = lowest * (len(observed) + 1) - (moved == lowest[None, :]).sum(axis=0)
            best = int(np.argmax(key))
            current = np.flatnonzero(codes == z[p])
            if len(current) == 0 or key[best] > key[current[0]]:
                d += (observed[:, p] != codes[best]).astype(d.dtype) - (observed[:, p] != z[p])
                z[p] = codes[best]
                changed = True
        if not changed:
            break
    if len(exclude) and (exclude == z[None, :]).all(axis=1).any():
        return latent
    return z


def _rescore(result: MilpResult, ensemble: TreeEnsemble, observed: np.ndarray, exploration: str,
             weight: float, mip_gap: float, mip_abs_gap: float) -> None:
    """Replace the solver's figures by the returned latent's true value under all observed points.

    The bound stays the solver's (a bound of a relaxation bounds the full problem); the gap
    follows the true value. A proven optimum that misses its bound by more than the allowed gap
    is demoted to "Gap not closed".
    """
    _score(result, ensemble, observed, exploration, weight)
    result.gap = relative_gap(result.objective, result.bound)
    allowed_gap = _allowed_gap(result.objective, mip_gap, mip_abs_gap)
    if result.bound < result.objective - VALUE_TOLERANCE * (1.0 + abs(result.objective)):
        raise RuntimeError(f"acquisition MILP bound {result.bound:.6g} is below the value {result.objective:.6g} "
                           "of its own answer: the model does not represent the ensemble")
    if result.status == "Optimal" and result.bound - result.objective > allowed_gap:
        result.status = "Gap not closed"


def _score(result: MilpResult, ensemble: TreeEnsemble, observed: np.ndarray, exploration: str,
           weight: float) -> None:
    """Set the result's mean, distance and objective to its latent's true values."""
    use_distance = exploration != "none" and weight != 0.0 and len(observed) > 0
    result.mean = float(ensemble.predict(result.latent[None])[0])
    result.distance = hamming_to_nearest(result.latent, observed) if use_distance else 0.0
    sign = 1.0 if exploration == "bonus" else -1.0
    result.objective = result.mean + (sign * weight * result.distance if use_distance else 0.0)


def _allowed_gap(value: float, mip_gap: float, mip_abs_gap: float) -> float:
    """How far a bound may lie above ``value`` for the value to count as optimal."""
    return max(mip_abs_gap, mip_gap * abs(value)) + VALUE_TOLERANCE * (1.0 + abs(value))


def _solve_by_levels(ensemble: TreeEnsemble, allowed: list[np.ndarray], n_codes: int, lazy: _Lazy,
                     weight: float, warm_start: np.ndarray | None) -> MilpResult:
    """The distance bonus solved one distance level at a time (``route="levels"``).

    With g(D) the best mean among latents at Hamming distance >= D from every observed point,
    the optimum is max_D g(D) + w D. First the mean alone is maximised (no distance rows): its
    latent x0 has value U at distance d0, and U bounds every g(D), so levels D <= d0 add nothing
    beyond x0. Levels D > d0 are then solved from D = P down, each a MILP of the ensemble alone
    with the matches to each observed point capped at P - D (the distance variable fixed at D),
    until U + w D cannot beat the best value found. A level's LP relaxation is nearly tight
    (HiGHS closes most levels at the root), whereas the direct model's is weak: spreading a
    position's weight over several codes looks far from every observed point. A level with no
    admissible latent that far is skipped.

    Measured (8x8x256, 800 depth-2 trees, 2 cores): faster than "direct" only on smile-synthetic
    encodings up to N = 2,000 (15 s against 29 s), slower on random codes at N = 2,000 (61 s
    against 34 s), at N = 10,000 (encodings 292 s against 16 s) and on clustered codes at N = 500
    (130-540 s against 1-2 s). Hence opt-in.
    """
    observed, options = lazy.observed, lazy.options
    gap, abs_gap = options["mip_gap"], options["mip_abs_gap"]
    top = lazy.solve(ensemble, allowed, n_codes, "none", 0.0, warm_start)
    mean_bound = top.bound
    _score(top, ensemble, observed, "bonus", weight)
    best, bound, statuses, levels = top, mean_bound + weight * top.distance, [top.status], 0
    for floor in range(len(allowed), int(top.distance), -1):
        ceiling = mean_bound + weight * floor
        if ceiling <= best.objective + _allowed_gap(best.objective, gap, abs_gap):
            bound = max(bound, ceiling)  # this level and every nearer one cannot do better
            break
        levels += 1
        start = best.latent if best.distance >= floor else top.latent
        try:
            level = lazy.solve(ensemble, allowed, n_codes, "bonus", weight, start, distance_floor=floor)
        except AcquisitionInfeasible:  # no admissible latent this far from every observed point
            continue
        bound = max(bound, level.bound)
        statuses.append(level.status)
        _score(level, ensemble, observed, "bonus", weight)
        if level.objective > best.objective:
            best = level
    best.bound = bound
    best.status = next((st for st in statuses if st not in ("Optimal", "trivial")), "Optimal")
    best.solve_s, best.time_limited = lazy.totals["solve_s"], lazy.totals["time_limited"]
    best.extra.update({"lazy_rounds": lazy.totals["rounds"], "nodes": lazy.totals["nodes"], "levels": levels,
                       "route": "levels"})
    _rescore(best, ensemble, observed, "bonus", weight, gap, abs_gap)
    return best


def relative_gap(value: float, bound: float) -> float:
    """``(bound - value) / |value|`` (HiGHS's convention), 0 when closed, inf for a zero value."""
    diff = max(bound - value, 0.0)
    if diff <= VALUE_TOLERANCE * (1.0 + abs(value)):
        return 0.0
    return diff / abs(value) if value != 0.0 else math.inf


def _solve_checked(ensemble: TreeEnsemble, allowed: list[np.ndarray], n_codes: int, **kwargs: Any) -> MilpResult:
    """:func:`_solve_once`, re-solved without warm start and presolve when its answer is worth
    less than HiGHS claimed (a start point returned as "Optimal" was seen); raise if it persists."""
    result = _solve_once(ensemble, allowed, n_codes, **kwargs)
    if result.model_value >= result.objective - VALUE_TOLERANCE * (1.0 + abs(result.objective)):
        return result
    retry = _solve_once(ensemble, allowed, n_codes, **{**kwargs, "use_start": False, "presolve": False})
    if retry.model_value >= retry.objective - VALUE_TOLERANCE * (1.0 + abs(retry.objective)):
        retry.extra["resolved_after_mismatch"] = True
        return retry
    raise RuntimeError(f"HiGHS reported objective {result.objective:.6g} but its solution is worth "
                       f"{result.model_value:.6g} (status {result.status})")


@dataclass
class _Groups:
    """Binary columns of the code choice: one per (position, group of interchangeable codes).

    ``group_col[p, c]`` is the column meaning "z_p == c" (-1 when no column stands for exactly
    that code), ``choice_col[p, c]`` the column that best stands for ``c`` (its own group, or
    the group of free codes that dominates it).
    """

    group_col: np.ndarray
    choice_col: np.ndarray
    codes: list[np.ndarray]
    position: np.ndarray

    def at(self, kept: np.ndarray) -> list[np.ndarray]:
        """Columns of each kept position, in the order of ``kept``."""
        return [np.flatnonzero(self.position == p) for p in kept]


def _code_groups(comp: Any, allowed: list[np.ndarray], kept: np.ndarray, exact: list[np.ndarray],
                 avoid: list[np.ndarray], n_codes: int) -> _Groups:
    """Merge the codes of each kept position that go the same way at every split.

    Within such a class, ``exact[p]`` codes (named by a distance or trust-region row) get one
    column each; ``avoid[p]`` codes (observed under a bonus, or excluded) are dominated by a free
    code of their class when it has one (same mean, never nearer to an observed point, never
    excluded) and get no column, else one column each; the free codes share one column.
    """
    n_pos = len(allowed)
    group_col = np.full((n_pos, n_codes), -1, dtype=np.int64)
    choice_col = np.full((n_pos, n_codes), -1, dtype=np.int64)
    codes_of: list[np.ndarray] = []
    position: list[int] = []

    def new_group(p: int, codes: np.ndarray) -> int:
        group_col[p, codes] = choice_col[p, codes] = len(codes_of)
        codes_of.append(codes)
        position.append(p)
        return len(codes_of) - 1

    split_nodes = np.flatnonzero(comp.feature >= 0)
    split_feat = comp.feature[split_nodes]
    for p in (int(p) for p in kept):
        codes = allowed[p]
        sig = comp.left_mask[split_nodes[split_feat == p]][:, codes].T  # (n_codes_p, n_splits_p)
        _, cls = np.unique(sig, axis=0, return_inverse=True)
        cls = cls.reshape(-1)
        is_exact = np.isin(codes, exact[p])
        is_avoided = np.isin(codes, avoid[p]) & ~is_exact
        for c in range(cls.max() + 1):
            members = cls == c
            free = members & ~is_exact & ~is_avoided
            singles = codes[members & (is_exact | is_avoided)]
            if free.any():
                choice_col[p, codes[members & is_avoided]] = new_group(p, codes[free])
                singles = codes[members & is_exact]
            for code in singles:
                new_group(p, np.array([code]))
    return _Groups(group_col, choice_col, codes_of, np.asarray(position, dtype=np.int64))


def _codes_per_position(points: np.ndarray, n_pos: int) -> list[np.ndarray]:
    return [np.unique(points[:, p]) for p in range(n_pos)]


def _solve_once(ensemble: TreeEnsemble, allowed: list[np.ndarray], n_codes: int, *,
                observed: np.ndarray, exploration: str, exploration_weight: float,
                trust_centers: np.ndarray | None, trust_radius: int | None, exclude: np.ndarray | None,
                warm_start: np.ndarray | None, max_nodes: int | None, time_limit: float | None,
                mip_gap: float, mip_abs_gap: float, seed: int, threads: int,
                rng: np.random.Generator | None, distance_floor: int | None = None, presolve: bool = True,
                use_start: bool = True, lp_solver: str | None = None) -> MilpResult:
    """One MILP over the distance rows of ``observed`` (see :func:`solve_acquisition`).

    ``exclude`` holds the excluded latents the model must tell apart exactly (the others are
    handled by :func:`_representative`). The result's ``choice`` is the set of latents the
    solution stands for: per position, the codes of its chosen group (every allowed code where
    the position is dropped).
    ``objective`` is HiGHS's claim and ``model_value`` the value of the decoded latent in this
    model; :func:`_solve_checked` compares them. ``lp_solver`` is HiGHS's ``mip_lp_solver``
    (default: "ipm" from ``IPM_ROOT_FROM_NONZEROS`` nonzeros on, else HiGHS's choice).
    """
    t_build = time.perf_counter()
    if exploration not in EXPLORATION_MODES:
        raise ValueError(f"exploration must be one of {EXPLORATION_MODES}, got {exploration!r}")
    n_pos = len(allowed)
    allowed = [np.asarray(a, dtype=np.int64) for a in allowed]
    centers = _rows_or_empty(trust_centers, n_pos)
    exclude = _rows_or_empty(exclude, n_pos)
    use_trust = trust_radius is not None and len(centers) > 0
    if exploration == "none" or len(observed) == 0 or exploration_weight == 0.0:
        exploration = "none"
    fill = _fill(allowed, warm_start, centers if use_trust and len(centers) == 1 else None)

    comp = ensemble.compiled(n_codes)
    used = set(int(p) for p in ensemble.used_features())
    # Exact exclusion keeps every position: a cut must remove one latent, not all that share its splits.
    keep_all = exploration != "none" or (use_trust and len(centers) > 1) or len(exclude) > 0
    kept = np.array([p for p in range(n_pos) if keep_all or p in used], dtype=np.int64)
    exact_pts = [centers] if use_trust else []
    avoid_pts = [exclude]
    if exploration == "penalty":
        exact_pts.append(observed)
    elif exploration == "bonus":
        avoid_pts.append(observed)
    groups = _code_groups(comp, allowed, kept, _codes_per_position(np.concatenate([centers[:0], *exact_pts]), n_pos),
                          _codes_per_position(np.concatenate(avoid_pts), n_pos), n_codes)
    model = _build_model(ensemble, comp, groups, kept, observed, exploration, exploration_weight, centers,
                         trust_radius if use_trust else None, exclude, distance_floor)
    n_x = len(groups.codes)
    if n_x == 0 or model.n_leaf_cols == 0 and all(
            len(groups.codes[g]) == len(allowed[groups.position[g]]) for g in range(n_x)):
        result = _trivial(ensemble, comp, fill, observed, exploration, exploration_weight, model,
                          time.perf_counter() - t_build)
        result.choice = [np.asarray(a) for a in allowed]
        return result

    options = {"output_flag": False, "threads": int(threads), "random_seed": int(seed),
               "mip_rel_gap": float(mip_gap), "mip_abs_gap": float(mip_abs_gap),
               "presolve": "on" if presolve else "off",
               "mip_allow_restart": model.matrix.nnz >= RESTART_FROM_NONZEROS}
    if lp_solver is None and model.matrix.nnz >= IPM_ROOT_FROM_NONZEROS:
        lp_solver = "ipm"
    if lp_solver is not None:
        options["mip_lp_solver"] = lp_solver
    if max_nodes is not None:
        options["mip_max_nodes"] = int(max_nodes)
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    start = None
    if warm_start is not None and use_start:
        start = _warm_start_vector(np.asarray(warm_start, dtype=np.int64).reshape(-1), comp, groups, kept, model,
                                   exploration, observed, centers, trust_radius)

    t_solve = time.perf_counter()
    solved = _run_highs(model, options, start, lp_first=use_start and model.matrix.nnz >= LP_FIRST_FROM_NONZEROS)
    solve_s = time.perf_counter() - t_solve
    if solved.x is None:  # no feasible solution found
        errors = {"Time limit reached": AcquisitionTimeLimit, "Infeasible": AcquisitionInfeasible}
        error = errors.get(solved.status, RuntimeError)
        raise error(f"acquisition MILP found no feasible point (status: {solved.status})")
    latent, choice = _decode(solved.x, groups, kept, fill, allowed, rng)
    result = _result(latent, solved.status, solved.objective, solved.bound, comp, observed, exploration,
                     exploration_weight, model, solve_s, time.perf_counter() - t_build - solve_s)
    result.time_limited = solved.time_limited
    result.choice = choice
    result.extra.update({"n_kept_positions": len(kept), "n_groups": n_x, "n_leaves": model.n_leaf_cols,
                         "n_cuts": model.n_cuts, "nodes": solved.nodes, "root_lp": lp_solver or "choose",
                         "relaxation": solved.relaxation, "fixed_by_reduced_cost": solved.fixed_by_reduced_cost})
    return result


@dataclass
class _Solved:
    """What HiGHS found for one model: ``x`` is None when it found no feasible point."""

    status: str
    objective: float
    bound: float
    x: np.ndarray | None
    nodes: int
    time_limited: bool
    #: how the LP relaxation was used: "off", "integral" (it proved the optimum), "start within
    #: gap" (its support's optimum is within the gap of it: proven), "start" (its support gave
    #: the start), "warm start kept" (the caller's start was better) or "no start"
    relaxation: str
    #: binaries fixed by the relaxation's reduced costs before the MILP
    fixed_by_reduced_cost: int = 0


def _run_highs(model: _Model, options: dict[str, Any], start: np.ndarray | None, *, lp_first: bool) -> _Solved:
    """Solve ``model`` with HiGHS from the column values ``start``; ``lp_first``: see :func:`_relaxation`."""
    relaxation, limited, fixed, lp = "off", False, 0, None  # the MILP's HighsLp, built once it runs
    if lp_first:
        relaxed = _relaxation(model, options)
        limited = relaxed.time_limited
        if relaxed.integral:
            return _Solved("Optimal", relaxed.value, relaxed.value, relaxed.x, 0, limited, "integral")
        relaxation = "no start"
        if relaxed.start is not None:
            found = model.value(relaxed.start)
            if relaxed.value - found <= max(options["mip_abs_gap"], options["mip_rel_gap"] * abs(found)):
                return _Solved("Optimal", found, relaxed.value, relaxed.start, 0, limited, "start within gap")
            lp = model.highs_lp()
            fixed = _fix_by_reduced_cost(lp, model, relaxed, found)
            better = start is None or found > model.value(start)
            start = relaxed.start if better else start
            relaxation = "start" if better else "warm start kept"
        options = {**options, **NO_SUB_MIP_HEURISTICS}
    h = _loaded_highs(model.highs_lp() if lp is None else lp, options)
    if start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = start.tolist()
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    x = np.asarray(h.getSolution().col_value) if info.primal_solution_status == 2 else None
    return _Solved(status, float(info.objective_function_value), float(info.mip_dual_bound), x,
                   int(info.mip_node_count), limited or status == "Time limit reached", relaxation, fixed)


def _fix_by_reduced_cost(lp: highspy.HighsLp, model: _Model, relaxed: _Relaxed, found: float) -> int:
    """Fix in ``lp`` the binaries that every solution worth more than ``found`` (the value of a
    feasible point) leaves at their bound in the relaxation's vertex; return how many.

    For any feasible x, value(x) <= LP value - sum_j |d_j| |x_j - x*_j| over the columns at a
    bound (d: reduced costs of the optimal vertex x*), so a binary with |d_j| above the
    LP-to-``found`` gap cannot move in a better solution: HiGHS does this after its own root
    LP; doing it here spares that LP on the full model. The proven bound of the fixed model
    bounds the full one, since everything fixed away is worth less than ``found``.
    Measured at 8x8x256, N = 2,000: 82 % of the binaries fixed on random codes, 31 % on
    encodings; the MILP after the relaxation 11 s -> 7 s and 16 s -> 13 s.
    """
    slack = relaxed.value - found + VALUE_TOLERANCE * (1.0 + abs(relaxed.value))
    binary = np.asarray(model.columns.integer, dtype=bool)
    at_zero, at_one = relaxed.x <= INTEGRALITY_TOLERANCE, relaxed.x >= 1.0 - INTEGRALITY_TOLERANCE
    fixed = binary & (at_zero | at_one) & (np.abs(relaxed.reduced_costs) > slack)
    upper, lower = np.asarray(lp.col_upper_).copy(), np.asarray(lp.col_lower_).copy()
    upper[fixed & at_zero] = 0.0
    lower[fixed & at_one] = 1.0
    lp.col_upper_, lp.col_lower_ = upper, lower
    return int(fixed.sum())


@dataclass
class _Relaxed:
    """The LP relaxation's vertex ``x`` and value, and a start from its support (or None)."""

    x: np.ndarray | None
    value: float
    integral: bool
    start: np.ndarray | None
    time_limited: bool
    #: reduced costs at ``x`` (for :func:`_fix_by_reduced_cost`)
    reduced_costs: np.ndarray | None


def _relaxation(model: _Model, options: dict[str, Any]) -> _Relaxed:
    """Solve the LP relaxation (interior point, then crossover to a vertex). An integral vertex is
    an optimal MILP solution with the LP value as its proof. Otherwise the MILP restricted to the
    relaxation's support (binaries at 0 fixed at 0; a few hundred stay free) is solved for a start.

    Measured at 8x8x256, 800 depth-2 trees, beta 1.96, one core: random codes at N = 2,000
    34-38 s -> 18 s (the start lies within the tolerance of the optimum, so HiGHS stops after its
    root), encodings 29-31 s -> 19 s; at N = 10,000 most lazy rounds have an integral relaxation
    (2 s instead of 3-5 s per round): random 15-17 s -> 10 s, encodings 16 s -> 17 s; 800 x 16
    leaves at N = 2,000 153 s -> 16 s. In `bench perf paper` the slowest of 10 solves went from
    136 s to 22 s (mean seconds per query 42 -> 19).
    """
    shared = {key: options[key] for key in ("output_flag", "threads", "random_seed", "time_limit")
              if key in options}
    relax = _loaded_highs(model.highs_lp(relaxed=True), {**shared, "solver": "ipm", "run_crossover": "on"})
    relax.run()
    status = relax.modelStatusToString(relax.getModelStatus())
    if status != "Optimal":
        return _Relaxed(None, math.nan, False, None, status == "Time limit reached", None)
    x = np.asarray(relax.getSolution().col_value)
    reduced_costs = np.asarray(relax.getSolution().col_dual)
    value = float(relax.getInfo().objective_function_value)
    binary = np.asarray(model.columns.integer, dtype=bool)
    if (np.abs(x[binary] - np.round(x[binary])) <= INTEGRALITY_TOLERANCE).all():
        x[binary] = np.round(x[binary])
        return _Relaxed(x, value, True, None, False, reduced_costs)
    support = model.highs_lp()
    upper = np.asarray(model.columns.upper, dtype=np.float64).copy()
    upper[binary & (x <= INTEGRALITY_TOLERANCE)] = 0.0
    support.col_upper_ = upper
    sub = _loaded_highs(support, {**options, "mip_max_nodes": SUPPORT_MILP_MAX_NODES})
    sub.run()
    found = sub.getInfo().primal_solution_status == 2
    sub_limited = sub.modelStatusToString(sub.getModelStatus()) == "Time limit reached"
    return _Relaxed(x, value, False, np.asarray(sub.getSolution().col_value) if found else None, sub_limited,
                    reduced_costs)


def _fill(allowed: list[np.ndarray], warm_start: np.ndarray | None, center: np.ndarray | None) -> np.ndarray:
    """Codes of positions the model drops, and the preferred pick within a group."""
    fill = np.array([a[0] for a in allowed], dtype=np.int64) if warm_start is None else \
        np.asarray(warm_start, dtype=np.int64).reshape(-1).copy()
    if center is not None:
        fill = center[0].copy()
    for p, codes in enumerate(allowed):  # e.g. a centre from before the mask changed
        if fill[p] not in codes:
            fill[p] = codes[0]
    return fill


def _decode(x: np.ndarray, groups: _Groups, kept: np.ndarray, fill: np.ndarray, allowed: list[np.ndarray],
            rng: np.random.Generator | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """The latent of a solution (per kept position a code of its chosen group, ``fill``'s if it
    can) and the codes it could take instead at each position (see :func:`_solve_once`)."""
    latent = fill.copy()
    choice = [np.asarray(a) for a in allowed]
    for p, cols in zip(kept, groups.at(kept)):
        codes = groups.codes[int(cols[np.argmax(x[cols])])]
        choice[p] = codes
        if fill[p] in codes:
            latent[p] = fill[p]
        elif rng is not None:
            latent[p] = int(rng.choice(codes))
        else:
            latent[p] = int(codes[0])
    return latent, choice


def _result(latent: np.ndarray, status: str, objective: float, bound: float, comp: Any, observed: np.ndarray,
            exploration: str, weight: float, model: _Model, solve_s: float, build_s: float) -> MilpResult:
    """A :class:`MilpResult` with the decoded latent's value in this model (its rows, not all points)."""
    mean = float(comp.predict(latent[None])[0])
    dist = hamming_to_nearest(latent, observed) if exploration != "none" else 0.0
    sign = 1.0 if exploration == "bonus" else -1.0
    value = mean + (sign * weight * dist if exploration != "none" else 0.0)
    return MilpResult(latent, status, objective, bound, relative_gap(objective, bound), solve_s, build_s, mean,
                      dist, model.n_cols, model.n_binaries, model.matrix.shape[0], model.matrix.nnz,
                      model_value=value)


def _trivial(ensemble: TreeEnsemble, comp: Any, fill: np.ndarray, observed: np.ndarray, exploration: str,
             weight: float, model: _Model, build_s: float) -> MilpResult:
    """The result when no decision is left: every kept position has one group and no tree splits."""
    result = _result(fill.copy(), "trivial", 0.0, 0.0, comp, observed, exploration, weight, model, 0.0, build_s)
    result.objective = result.bound = result.model_value
    result.gap = 0.0
    return result


@dataclass
class _Model:
    """The assembled MILP: columns, sparse rows, and where each kind of column lives."""

    columns: _Columns
    rows: _Rows
    offset: float
    leaf_col: np.ndarray
    n_leaf_cols: int
    d_col: int
    b_cols: np.ndarray
    cuts: set[tuple[int, ...]]
    matrix: sp.csr_matrix = field(init=False)

    def __post_init__(self) -> None:
        self.matrix = self.rows.matrix(self.columns.n)

    @property
    def n_cols(self) -> int:
        return self.columns.n

    @property
    def n_binaries(self) -> int:
        return int(sum(self.columns.integer))

    @property
    def n_cuts(self) -> int:
        return len(self.cuts)

    def highs_lp(self, relaxed: bool = False) -> highspy.HighsLp:
        """The model as a maximisation ``HighsLp`` (its LP relaxation with ``relaxed``)."""
        lp = highspy.HighsLp()
        lp.num_col_ = self.n_cols
        lp.num_row_ = self.matrix.shape[0]
        lp.col_cost_ = np.asarray(self.columns.cost, dtype=np.float64)
        lp.col_lower_ = np.asarray(self.columns.lower, dtype=np.float64)
        lp.col_upper_ = np.asarray(self.columns.upper, dtype=np.float64)
        lp.row_lower_ = np.asarray(self.rows.lower, dtype=np.float64)
        lp.row_upper_ = np.asarray(self.rows.upper, dtype=np.float64)
        lp.offset_ = float(self.offset)
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = self.matrix.indptr.astype(np.int32)
        lp.a_matrix_.index_ = self.matrix.indices.astype(np.int32)
        lp.a_matrix_.value_ = self.matrix.data
        lp.a_matrix_.num_col_ = self.n_cols
        lp.a_matrix_.num_row_ = self.matrix.shape[0]
        if not relaxed:
            lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                               for i in self.columns.integer]
        return lp

    def value(self, x: np.ndarray) -> float:
        """Objective of the column values ``x``."""
        return float(np.dot(self.columns.cost, x) + self.offset)


def _build_model(ensemble: TreeEnsemble, comp: Any, groups: _Groups, kept: np.ndarray, observed: np.ndarray,
                 exploration: str, weight: float, centers: np.ndarray, trust_radius: int | None,
                 exclude: np.ndarray, distance_floor: int | None = None) -> _Model:
    """Columns and rows of the acquisition MILP (see the module doc); ``distance_floor`` fixes
    the distance variable (the "levels" route)."""
    columns = _Columns()
    columns.add(np.zeros(len(groups.codes)), 0.0, 1.0, True)
    rows = _Rows()
    for cols in groups.at(kept):  # one group per kept position
        rows.add(cols, np.ones(len(cols)), 1.0, 1.0)
    leaf_col, offset = _add_tree_rows(ensemble, comp, groups, kept, columns, rows)
    n_leaf_cols = columns.n - len(groups.codes)
    n_kept = len(kept)

    def point_cols(z: np.ndarray) -> np.ndarray:
        cols = groups.group_col[kept, z[kept]]
        return cols[cols >= 0]

    d_col = -1
    if exploration != "none":
        low, high = (0.0, float(n_kept)) if distance_floor is None else (float(distance_floor),) * 2
        d_col = int(columns.add(weight if exploration == "bonus" else -weight, low, high, False)[0])
        obs_cols = _unique_rows(observed, kept, groups.group_col)
        if exploration == "bonus":  # d <= P - matches(i)
            for cols in obs_cols:
                rows.add(np.append(cols, d_col), np.ones(len(cols) + 1), -np.inf, float(n_kept))
        else:  # d >= P - matches(i) - P (1 - a_i), exactly one a_i
            a_cols = columns.add(np.zeros(len(obs_cols)), 0.0, 1.0, True)
            for cols, a in zip(obs_cols, a_cols):
                rows.add(np.concatenate([cols, [d_col, a]]),
                         np.concatenate([np.ones(len(cols)), [1.0, -float(n_kept)]]), 0.0, np.inf)
            rows.add(a_cols, np.ones(len(a_cols)), 1.0, 1.0)
    b_cols = np.empty(0, dtype=np.int64)
    if trust_radius is not None:
        radius = float(trust_radius)
        if len(centers) == 1:  # dropped positions equal the centre there
            cols = point_cols(centers[0])
            rows.add(cols, np.ones(len(cols)), n_kept - radius, np.inf)
        else:
            b_cols = columns.add(np.zeros(len(centers)), 0.0, 1.0, True)
            for c, b in zip(centers, b_cols):
                cols = point_cols(c)
                rows.add(np.append(cols, b), np.append(np.ones(len(cols)), -(n_kept - radius)), 0.0, np.inf)
            rows.add(b_cols, np.ones(len(b_cols)), 1.0, np.inf)
    # no-good cuts: an excluded latent's codes each have their own column (or none, when a free
    # code dominates them: then the model cannot produce it), so each cut removes that latent only
    cuts: set[tuple[int, ...]] = set()
    for z in exclude:
        cols = groups.group_col[kept, z[kept]]
        if (cols >= 0).all() and tuple(sorted(cols)) not in cuts:
            cuts.add(tuple(sorted(int(c) for c in cols)))
            rows.add(cols, np.ones(len(cols)), -np.inf, n_kept - 1.0)
    return _Model(columns, rows, offset, leaf_col, n_leaf_cols, d_col, b_cols, cuts)


def _add_tree_rows(ensemble: TreeEnsemble, comp: Any, groups: _Groups, kept: np.ndarray, columns: _Columns,
                   rows: _Rows) -> tuple[np.ndarray, float]:
    """Leaf columns, one-leaf-per-tree rows and split rows; (leaf column per node, constant offset).

    Every split gets one row per side, in whichever form has fewer nonzeros (module doc).
    """
    leaf_col = np.full(len(comp.feature), -1, dtype=np.int64)
    offset = comp.base_score
    groups_at = {int(p): cols for p, cols in zip(kept, groups.at(kept))}

    def split_groups(node: int) -> tuple[np.ndarray, np.ndarray]:
        groups_p = groups_at[int(comp.feature[node])]
        goes_left = comp.left_mask[node, [groups.codes[g][0] for g in groups_p]]
        return groups_p[goes_left], groups_p[~goes_left]

    for t, tree in enumerate(ensemble.trees):
        root = int(comp.roots[t])
        if tree.feature[0] < 0:
            offset += float(tree.value[0])
            continue
        leaves = root + np.flatnonzero(tree.feature < 0)
        leaf_col[leaves] = columns.add(comp.value[leaves], 0.0, 1.0, False)
        rows.add(leaf_col[leaves], np.ones(len(leaves)), 1.0, 1.0)
        under = tree.leaves_under()
        for k in np.flatnonzero(tree.feature >= 0):
            left_groups, right_groups = split_groups(root + int(k))
            for side_leaves, same, other in ((under[int(tree.left[k])], left_groups, right_groups),
                                             (under[int(tree.right[k])], right_groups, left_groups)):
                y = leaf_col[root + side_leaves]
                if len(same) <= len(other):  # sum y - sum x(same side) <= 0
                    rows.add(np.concatenate([y, same]), np.concatenate([np.ones(len(y)), -np.ones(len(same))]),
                             -np.inf, 0.0)
                else:  # sum y + sum x(other side) <= 1
                    rows.add(np.concatenate([y, other]), np.ones(len(y) + len(other)), -np.inf, 1.0)
        # Oblivious trees (CatBoost) test one split per level: the leaves below its left children
        # then weigh exactly x(left groups). These equalities make the relaxation much tighter.
        for nodes in _oblivious_levels(tree, comp, root):
            left_groups, _ = split_groups(root + nodes[0])
            y = leaf_col[root + np.concatenate([under[int(tree.left[k])] for k in nodes])]
            rows.add(np.concatenate([y, left_groups]), np.concatenate([np.ones(len(y)), -np.ones(len(left_groups))]),
                     0.0, 0.0)
    return leaf_col, offset


def _new_highs() -> highspy.Highs:
    """A HiGHS instance, without the banner it prints on stdout when constructed."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    return h


def _loaded_highs(lp: highspy.HighsLp, options: dict[str, Any]) -> highspy.Highs:
    """A HiGHS instance with ``options`` set and ``lp`` passed, ready to run."""
    h = _new_highs()
    for key, value in options.items():
        h.setOptionValue(key, value)
    h.passModel(lp)
    return h


def _oblivious_levels(tree: Any, comp: Any, root: int) -> list[list[int]]:
    """Split nodes per level if every level tests one split (same feature, same left codes); else []."""
    levels: list[list[int]] = []
    frontier = [0]
    while frontier:
        splits = [k for k in frontier if tree.feature[k] >= 0]
        if not splits:
            break
        if len(splits) != len(frontier):
            return []  # leaves above the last level: not a complete oblivious tree
        first = root + splits[0]
        for k in splits[1:]:
            if tree.feature[k] != tree.feature[splits[0]] or \
                    not np.array_equal(comp.left_mask[root + k], comp.left_mask[first]):
                return []
        levels.append(splits)
        frontier = [int(c) for k in splits for c in (tree.left[k], tree.right[k])]
    return levels if len(levels) > 1 else []


def _rows_or_empty(points: np.ndarray | None, n_pos: int) -> np.ndarray:
    if points is None:
        return np.empty((0, n_pos), dtype=np.int64)
    return np.asarray(points, dtype=np.int64).reshape(-1, n_pos)


def _unique_rows(points: np.ndarray, kept: np.ndarray, group_col: np.ndarray) -> list[np.ndarray]:
    """Group columns matched by each point (duplicates in group space removed)."""
    if len(points) == 0:
        return []
    cols = group_col[kept[None, :], points[:, kept]]  # (n, n_kept), -1 where the code is not allowed
    cols = np.unique(cols, axis=0)
    return [row[row >= 0] for row in cols]


def _warm_start_vector(z: np.ndarray, comp: Any, groups: _Groups, kept: np.ndarray, model: _Model,
                       exploration: str, observed: np.ndarray, centers: np.ndarray,
                       trust_radius: int | None) -> np.ndarray | None:
    """Column values of latent ``z`` or of one that dominates it (None if a code is not allowed,
    or the point is cut off or outside every trust region)."""
    cols = groups.choice_col[kept, z[kept]]
    if (cols < 0).any() or tuple(sorted(int(c) for c in cols)) in model.cuts:
        return None
    group_col, d_col, b_cols = groups.group_col, model.d_col, model.b_cols
    vec = np.zeros(model.n_cols)
    vec[cols] = 1.0
    leaves = comp.leaf_ids(z[None])[0]
    lc = model.leaf_col[leaves]
    vec[lc[lc >= 0]] = 1.0
    if d_col >= 0:
        # observed codes that have no column (dominated, not allowed) never match
        obs_groups = group_col[kept[None, :], observed[:, kept]]
        matched = (obs_groups == cols[None, :]) & (obs_groups >= 0)
        vec[d_col] = float(len(kept) - matched.sum(axis=1).max())
        if vec[d_col] < model.columns.lower[d_col]:
            return None  # nearer to an observed point than the fixed distance allows
        vec[d_col] = min(vec[d_col], model.columns.upper[d_col])
        if exploration == "penalty":
            # a-columns follow d in the order of unique observed rows; recompute that order
            obs_cols = np.unique(group_col[kept[None, :], observed[:, kept]], axis=0)
            matches = (obs_cols == cols[None, :]).sum(axis=1)
            vec[d_col + 1 + int(np.argmax(matches))] = 1.0
            vec[d_col] = float(len(kept) - matches.max())
    if len(b_cols):
        dist_c = (centers[:, kept] != z[kept][None, :]).sum(axis=1)
        inside = dist_c <= (trust_radius or 0)
        if not inside.any():
            return None
        vec[b_cols[inside]] = 1.0
    return vec
