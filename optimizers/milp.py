"""Exact acquisition over a tree ensemble: Mišić's MILP built directly as a sparse HiGHS model.

Variables: one binary per (position, group of interchangeable codes) with exactly one group per
position; one continuous weight per leaf with the weights of each tree summing to one; for the
exploration term a distance variable (and, as a penalty, one selector binary per observed point).
Every split gets one row per side,

    sum(left leaves)  <= sum(x over groups going left)      (or  <= 1 - sum(x going right))
    sum(right leaves) <= 1 - sum(x over groups going left)  (or  <= sum(x going right)),

whichever form has fewer nonzeros. Codes that go the same way at every split of a position and
that no observed point, trust-region centre or excluded latent uses there are merged into one
binary: they are indistinguishable to the objective and to every row. Positions that no split
tests are dropped (and set to the warm-start code) when no distance term needs them.

The objective maximised is ``mean(z) + exploration_weight * d`` where ``d`` is the Hamming
distance to the nearest observed latent ("bonus": rows ``d + sum_p x[p, z_ip] <= P``, one per
point with P nonzeros), or ``mean(z) - exploration_weight * d`` ("penalty", big-M selection of
the nearest point), or the mean alone ("none"). A trust region keeps the solution within a
Hamming radius of one centre, or of at least one of several centres.
"""

from __future__ import annotations

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


@dataclass
class MilpResult:
    """Outcome of one acquisition solve.

    ``objective`` is the solver's incumbent value (mean plus exploration term), ``bound`` its
    proven upper bound, ``gap`` the relative gap; ``mean`` and ``distance`` are recomputed from
    the returned latent. ``solve_s`` is HiGHS's run; ``build_s`` everything else (building the
    model, handing it over, decoding the solution), summed over lazy rounds. ``status`` is
    HiGHS's model status text ("Optimal", "Time limit
    reached", ...) or "trivial" when the model had no decision left.
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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def optimal(self) -> bool:
        """Whether the solver proved optimality (within its MIP gap)."""
        return self.status in ("Optimal", "trivial")

    def info(self) -> dict[str, Any]:
        """Plain-dict summary for ``Optimizer.last_info``."""
        return {"status": self.status, "objective": self.objective, "bound": self.bound, "gap": self.gap,
                "solve_s": self.solve_s, "build_s": self.build_s, "pred_mean": self.mean,
                "distance": self.distance, "n_vars": self.n_vars, "n_binaries": self.n_binaries,
                "n_rows": self.n_rows, "n_nonzeros": self.n_nonzeros}


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
                      warm_start: np.ndarray | None = None, time_limit: float = 60.0,
                      mip_gap: float = 1e-4, mip_abs_gap: float = 1e-6, seed: int = 0, threads: int = 1,
                      rng: np.random.Generator | None = None, lazy_rows: int = 32) -> MilpResult:
    """Maximise the acquisition over latents whose position ``p`` takes a code in ``allowed[p]``.

    ``observed`` (n, P) are the points of the distance term; ``trust_centers`` (m, P) with
    ``trust_radius`` restrict the search to a Hamming ball around at least one centre;
    ``exclude`` (e, P) are latents the result must differ from at the level of merged code
    groups: the result differs from each of them at some position in a way that some split,
    distance row or trust-region row can see. ``warm_start`` (P,) seeds the solver and fills
    positions the model does not need. Codes within a merged group are picked with ``rng``
    (else the smallest), preferring the warm-start code.

    With a distance bonus and more than ``lazy_rows`` observed points, distance rows are added
    lazily: the model starts with the ``lazy_rows`` points nearest to the warm start (a
    relaxation: fewer rows can only overestimate the distance), and each round adds the points
    found nearer to the solution than the model believed, until none is (then the solution and
    the bound hold for all points). ``lazy_rows=0`` builds every row at once.
    """
    n_pos = len(allowed)
    observed_arr = _rows_or_empty(observed, n_pos)
    common = dict(exploration=exploration, exploration_weight=exploration_weight, trust_centers=trust_centers,
                  trust_radius=trust_radius, exclude=exclude, mip_gap=mip_gap, mip_abs_gap=mip_abs_gap,
                  seed=seed, threads=threads, rng=rng)
    if exploration != "bonus" or exploration_weight == 0.0 or lazy_rows <= 0 or len(observed_arr) <= lazy_rows:
        return _solve_once(ensemble, allowed, n_codes, observed=observed_arr, warm_start=warm_start,
                           time_limit=time_limit, **common)
    start = time.perf_counter()
    anchor = np.array([a[0] for a in allowed]) if warm_start is None else np.asarray(warm_start).reshape(-1)
    nearest = np.argsort((observed_arr != anchor[None, :]).sum(axis=1), kind="stable")
    active = np.zeros(len(observed_arr), dtype=bool)
    active[nearest[:lazy_rows]] = True
    solve_s = 0.0
    rounds = 0
    while True:
        rounds += 1
        remaining = max(time_limit - (time.perf_counter() - start), 0.05)
        result = _solve_once(ensemble, allowed, n_codes, observed=observed_arr[active], warm_start=warm_start,
                             time_limit=remaining, **common)
        solve_s += result.solve_s
        true_d = (observed_arr != result.latent[None, :]).sum(axis=1)
        closer = np.flatnonzero(true_d < result.distance - 1e-9)
        if len(closer) == 0:
            break
        if time.perf_counter() - start >= time_limit:
            result.status = "Time limit reached"
            result.distance = float(true_d.min())
            result.objective = result.mean + exploration_weight * result.distance
            break
        # add the violated points and, pre-emptively, the inactive ones just as near: the next
        # solutions tend to lie next to this one
        near = np.flatnonzero(~active & (true_d <= result.distance + 1))
        active[near[np.argsort(true_d[near], kind="stable")[:lazy_rows]]] = True
        warm_start = result.latent
    result.build_s, result.solve_s = time.perf_counter() - start - solve_s, solve_s
    result.extra.update({"lazy_rounds": rounds, "distance_rows": int(active.sum())})
    return result


def _solve_once(ensemble: TreeEnsemble, allowed: list[np.ndarray], n_codes: int, *,
                observed: np.ndarray | None, exploration: str, exploration_weight: float,
                trust_centers: np.ndarray | None, trust_radius: int | None, exclude: np.ndarray | None,
                warm_start: np.ndarray | None, time_limit: float, mip_gap: float, mip_abs_gap: float, seed: int,
                threads: int, rng: np.random.Generator | None) -> MilpResult:
    """One MILP over all given rows (see :func:`solve_acquisition`)."""
    t_build = time.perf_counter()
    if exploration not in EXPLORATION_MODES:
        raise ValueError(f"exploration must be one of {EXPLORATION_MODES}, got {exploration!r}")
    n_pos = len(allowed)
    allowed = [np.asarray(a, dtype=np.int64) for a in allowed]
    observed = _rows_or_empty(observed, n_pos)
    centers = _rows_or_empty(trust_centers, n_pos)
    exclude = _rows_or_empty(exclude, n_pos)
    use_trust = trust_radius is not None and len(centers) > 0
    if exploration == "none" or len(observed) == 0 or exploration_weight == 0.0:
        exploration = "none"
    fill = np.array([a[0] for a in allowed], dtype=np.int64) if warm_start is None else \
        np.asarray(warm_start, dtype=np.int64).reshape(-1).copy()
    if use_trust and len(centers) == 1:
        fill = centers[0].copy()
    for p, codes in enumerate(allowed):  # e.g. a centre from before the mask changed
        if fill[p] not in codes:
            fill[p] = codes[0]

    comp = ensemble.compiled(n_codes)
    used = set(int(p) for p in ensemble.used_features())
    keep_all = exploration != "none" or (use_trust and len(centers) > 1)
    kept = np.array([p for p in range(n_pos) if keep_all or p in used], dtype=np.int64)
    dropped = np.setdiff1d(np.arange(n_pos), kept)

    # --- split nodes per position, and merged code groups ---------------------------------
    split_nodes = np.flatnonzero(comp.feature >= 0)
    split_feat = comp.feature[split_nodes]
    # Codes that a distance row or trust-region row names must stay distinguishable (excluded
    # latents need not be: their cut then removes every latent the model cannot tell from them).
    # With a distance bonus, an observed code is dominated by an unobserved code that goes the
    # same way at every split (same mean, never nearer to any point): it gets no column.
    obs_pin = observed if exploration != "none" else observed[:0]
    center_pin = centers if use_trust else centers[:0]
    group_col = np.full((n_pos, n_codes), -1, dtype=np.int64)  # column meaning "z_p == code"
    choice_col = np.full((n_pos, n_codes), -1, dtype=np.int64)  # column that best stands for code
    group_codes: list[np.ndarray] = []
    group_pos: list[int] = []

    def new_group(p: int, codes: np.ndarray) -> int:
        group_col[p, codes] = choice_col[p, codes] = len(group_codes)
        group_codes.append(codes)
        group_pos.append(p)
        return len(group_codes) - 1

    for p in kept:
        p = int(p)
        codes = allowed[p]
        nodes_p = split_nodes[split_feat == p]
        sig = comp.left_mask[nodes_p][:, codes].T  # (n_codes_p, n_splits_p)
        _, cls = np.unique(sig, axis=0, return_inverse=True)
        cls = cls.reshape(-1)
        is_obs = np.isin(codes, obs_pin[:, p]) if len(obs_pin) else np.zeros(len(codes), dtype=bool)
        is_center = np.isin(codes, center_pin[:, p]) if len(center_pin) else np.zeros(len(codes), dtype=bool)
        for c in range(cls.max() + 1):
            members = cls == c
            free = members & ~is_obs & ~is_center
            pinned_codes = codes[members & (is_obs | is_center)]
            if free.any():
                g = new_group(p, codes[free])
                if exploration == "bonus":
                    dominated = codes[members & is_obs & ~is_center]
                    choice_col[p, dominated] = g
                    pinned_codes = codes[members & is_center]
            for code in pinned_codes:
                new_group(p, np.array([code]))
    n_x = len(group_codes)
    group_pos_arr = np.asarray(group_pos, dtype=np.int64)

    # --- leaf columns --------------------------------------------------------------------
    leaf_col = np.full(len(comp.feature), -1, dtype=np.int64)
    columns = _Columns()
    columns.add(np.zeros(n_x), 0.0, 1.0, True)  # one binary per (position, code group)
    offset = comp.base_score
    tree_leaves: list[np.ndarray] = []
    for t, tree in enumerate(ensemble.trees):
        root = int(comp.roots[t])
        if tree.feature[0] < 0:
            offset += float(tree.value[0])
            tree_leaves.append(np.empty(0, dtype=np.int64))
            continue
        leaves = root + np.flatnonzero(tree.feature < 0)
        leaf_col[leaves] = columns.add(comp.value[leaves], 0.0, 1.0, False)
        tree_leaves.append(leaves)
    n_leaf_cols = columns.n - n_x

    rows = _Rows()
    # one group per kept position
    order = np.argsort(group_pos_arr, kind="stable")
    bounds = np.searchsorted(group_pos_arr[order], kept, side="left")
    bounds = np.append(bounds, n_x)
    for i in range(len(kept)):
        cols = order[bounds[i]:bounds[i + 1]]
        rows.add(cols, np.ones(len(cols)), 1.0, 1.0)
    # leaf weights sum to one per tree
    for leaves in tree_leaves:
        if len(leaves):
            rows.add(leaf_col[leaves], np.ones(len(leaves)), 1.0, 1.0)
    # split rows
    groups_at = {int(p): np.unique(group_col[p, allowed[p]][group_col[p, allowed[p]] >= 0]) for p in kept}

    def split_groups(node: int) -> tuple[np.ndarray, np.ndarray]:
        groups_p = groups_at[int(comp.feature[node])]
        goes_left = comp.left_mask[node, [group_codes[g][0] for g in groups_p]]
        return groups_p[goes_left], groups_p[~goes_left]

    for t, tree in enumerate(ensemble.trees):
        if tree.feature[0] < 0:
            continue
        root = int(comp.roots[t])
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

    n_kept = len(kept)

    def point_cols(z: np.ndarray) -> np.ndarray:
        cols = group_col[kept, z[kept]]
        return cols[cols >= 0]

    # distance term
    d_col = -1
    if exploration != "none":
        weight = exploration_weight if exploration == "bonus" else -exploration_weight
        d_col = int(columns.add(weight, 0.0, float(n_kept), False)[0])
        obs_cols = _unique_rows(observed, kept, group_col)
        if exploration == "bonus":  # d <= P - matches(i)
            for cols in obs_cols:
                rows.add(np.append(cols, d_col), np.ones(len(cols) + 1), -np.inf, float(n_kept))
        else:  # d >= P - matches(i) - P (1 - a_i), exactly one a_i
            a_cols = columns.add(np.zeros(len(obs_cols)), 0.0, 1.0, True)
            for cols, a in zip(obs_cols, a_cols):
                rows.add(np.concatenate([cols, [d_col, a]]),
                         np.concatenate([np.ones(len(cols)), [1.0, -float(n_kept)]]), 0.0, np.inf)
            rows.add(a_cols, np.ones(len(a_cols)), 1.0, 1.0)
    # trust region
    b_cols = np.empty(0, dtype=np.int64)
    if use_trust:
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
    # no-good cuts: differ from every excluded latent on some kept position's group
    n_cuts = 0
    for z in exclude:
        if len(dropped) and (z[dropped] != fill[dropped]).any():
            continue  # the result matches ``fill`` there, so it differs from z already
        cols = group_col[kept, z[kept]]
        if (cols < 0).any():
            continue  # z uses a code that is not allowed or dominated here: it cannot be produced
        rows.add(cols, np.ones(len(cols)), -np.inf, n_kept - 1.0)
        n_cuts += 1

    next_col = columns.n
    matrix = rows.matrix(next_col)
    n_bin = int(sum(columns.integer))
    build_s = time.perf_counter() - t_build

    if n_x == 0 or all(len(group_codes[g]) == len(allowed[group_pos[g]]) for g in range(n_x)) and n_leaf_cols == 0:
        latent = fill.copy()
        mean = float(ensemble.predict(latent[None])[0])
        dist = hamming_to_nearest(latent, observed) if exploration != "none" else 0.0
        obj = float(acquisition_value(ensemble, latent[None], observed=observed, exploration=exploration,
                                      exploration_weight=exploration_weight)[0])
        return MilpResult(latent, "trivial", obj, obj, 0.0, 0.0, build_s, mean, dist, next_col, n_bin,
                          matrix.shape[0], matrix.nnz)

    h = _new_highs()
    for key, value in (("output_flag", False), ("threads", int(threads)), ("random_seed", int(seed)),
                       ("time_limit", float(time_limit)), ("mip_rel_gap", float(mip_gap)),
                       ("mip_abs_gap", float(mip_abs_gap))):
        h.setOptionValue(key, value)
    lp = highspy.HighsLp()
    lp.num_col_ = next_col
    lp.num_row_ = matrix.shape[0]
    lp.col_cost_ = np.asarray(columns.cost, dtype=np.float64)
    lp.col_lower_ = np.asarray(columns.lower, dtype=np.float64)
    lp.col_upper_ = np.asarray(columns.upper, dtype=np.float64)
    lp.row_lower_ = np.asarray(rows.lower, dtype=np.float64)
    lp.row_upper_ = np.asarray(rows.upper, dtype=np.float64)
    lp.offset_ = float(offset)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data
    lp.a_matrix_.num_col_ = next_col
    lp.a_matrix_.num_row_ = matrix.shape[0]
    lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                       for i in columns.integer]
    h.passModel(lp)

    if warm_start is not None:
        start = _warm_start_vector(np.asarray(warm_start, dtype=np.int64).reshape(-1), comp, group_col,
                                   choice_col, kept, leaf_col, next_col, d_col, exploration, observed, centers,
                                   b_cols, trust_radius)
        if start is not None:
            sol = highspy.HighsSolution()
            sol.col_value = start.tolist()
            sol.value_valid = True
            h.setSolution(sol)

    t_solve = time.perf_counter()
    h.run()
    solve_s = time.perf_counter() - t_solve
    status = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    if info.primal_solution_status != 2:  # no feasible solution found
        raise RuntimeError(f"acquisition MILP found no feasible point (status: {status})")
    x = np.asarray(h.getSolution().col_value)
    latent = fill.copy()
    for i, p in enumerate(kept):
        cols = order[bounds[i]:bounds[i + 1]]
        g = int(cols[np.argmax(x[cols])])
        codes = group_codes[g]
        if fill[p] in codes:
            latent[p] = fill[p]
        elif rng is not None:
            latent[p] = int(rng.choice(codes))
        else:
            latent[p] = int(codes[0])
    mean = float(comp.predict(latent[None])[0])
    dist = hamming_to_nearest(latent, observed) if exploration != "none" else 0.0
    build_s = time.perf_counter() - t_build - solve_s  # building, hand-over and decoding
    objective = float(info.objective_function_value)
    bound = float(info.mip_dual_bound)
    gap = float(info.mip_gap)
    return MilpResult(latent, status, objective, bound, gap, solve_s, build_s, mean, dist, next_col, n_bin,
                      matrix.shape[0], matrix.nnz, {"n_kept_positions": n_kept, "n_groups": n_x,
                                                    "n_leaves": n_leaf_cols, "n_cuts": n_cuts})


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


def _warm_start_vector(z: np.ndarray, comp: Any, group_col: np.ndarray, choice_col: np.ndarray, kept: np.ndarray,
                       leaf_col: np.ndarray, n_cols: int, d_col: int, exploration: str, observed: np.ndarray,
                       centers: np.ndarray, b_cols: np.ndarray, trust_radius: int | None) -> np.ndarray | None:
    """Column values of latent ``z`` or of one that dominates it (None if a code is not allowed)."""
    cols = choice_col[kept, z[kept]]
    if (cols < 0).any():
        return None
    vec = np.zeros(n_cols)
    vec[cols] = 1.0
    leaves = comp.leaf_ids(z[None])[0]
    lc = leaf_col[leaves]
    vec[lc[lc >= 0]] = 1.0
    if d_col >= 0:
        # observed codes that have no column (dominated, not allowed) never match
        obs_groups = group_col[kept[None, :], observed[:, kept]]
        matched = (obs_groups == cols[None, :]) & (obs_groups >= 0)
        vec[d_col] = float(len(kept) - matched.sum(axis=1).max())
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
