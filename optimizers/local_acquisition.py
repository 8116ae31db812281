"""Cheap acquisition optimizer: multi-start steepest ascent over one-code changes of the surrogate.

Each step scores *every* single-position change at once. The mean part is incremental: only the
trees that test position p change when p changes, so for every (tree, tested position) pair the
tree is walked once with all codes of that position in parallel, and a step walks again only
the trees that test the position it changed (the others keep their rows). The distance-to-nearest
term is exact and incremental too: after changing p to c, the distance to point i is
``d_i - [z_p != z_ip] + [c != z_ip]``, whose minimum over i is
``min(min_i base_i + 1, min_{i: z_ip = c} base_i)`` with ``base_i = d_i - [z_p != z_ip]``.
It optimizes the same objective as :func:`optimizers.milp.solve_acquisition` (without a proof),
and serves both as an acquisition of its own and as the MILP's warm start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from bench.optimizers.milp import EXPLORATION_MODES
from bench.optimizers.tree_ensemble import TreeEnsemble


@dataclass
class LocalResult:
    """One local optimum: the flat latent, its acquisition value, mean and distance."""

    latent: np.ndarray
    value: float
    mean: float
    distance: float
    steps: int


class IncrementalScorer:
    """Scores all one-position changes of a latent under mean + exploration (see module doc)."""

    def __init__(self, ensemble: TreeEnsemble, allowed: list[np.ndarray], n_codes: int, *,
                 observed: np.ndarray | None = None, exploration: str = "none",
                 exploration_weight: float = 0.0) -> None:
        if exploration not in EXPLORATION_MODES:
            raise ValueError(f"exploration must be one of {EXPLORATION_MODES}, got {exploration!r}")
        self.comp = ensemble.compiled(n_codes)
        self.n_codes = n_codes
        self.n_pos = len(allowed)
        self.allowed = np.zeros((self.n_pos, n_codes), dtype=bool)
        for p, codes in enumerate(allowed):
            self.allowed[p, codes] = True
        pairs = set()
        for t, tree in enumerate(ensemble.trees):
            for p in np.unique(tree.feature[tree.feature >= 0]):
                pairs.add((t, int(p)))
        pairs_arr = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
        self.pair_tree, self.pair_feat = pairs_arr[:, 0], pairs_arr[:, 1]
        tree_tests = np.zeros((len(ensemble.trees), self.n_pos), dtype=bool)
        tree_tests[self.pair_tree, self.pair_feat] = True
        self.pair_tests = tree_tests[self.pair_tree]  # (pair, position): the pair's tree tests it
        # sums the pairs' rows per position: the same additions in the same order as np.add.at,
        # ten times faster
        self.pair_sum = sp.csr_matrix((np.ones(len(self.pair_feat)), (self.pair_feat, np.arange(len(self.pair_feat)))),
                                      shape=(self.n_pos, len(self.pair_feat)))
        # the last latent's per-pair rows: a step changes one position, and only the trees that
        # test it walk again (at 800 trees x 10,000 points a step went from 24 ms to a few)
        self._walked: tuple[np.ndarray, np.ndarray] | None = None
        self.observed = np.empty((0, self.n_pos), dtype=np.int64) if observed is None else \
            np.asarray(observed, dtype=np.int64).reshape(-1, self.n_pos)
        self.sign = {"none": 0.0, "bonus": 1.0, "penalty": -1.0}[exploration]
        if len(self.observed) == 0:
            self.sign = 0.0
        self.weight = float(exploration_weight)

    def mean(self, z: np.ndarray) -> float:
        """Surrogate mean of one flat latent."""
        return float(self.comp.predict(z[None])[0])

    def distances(self, z: np.ndarray) -> np.ndarray:
        """Hamming distance from ``z`` to every observed point."""
        return (self.observed != z[None, :]).sum(axis=1)

    def value(self, z: np.ndarray) -> tuple[float, float, float]:
        """(acquisition, mean, distance to nearest) of one flat latent."""
        mean = self.mean(z)
        dist = float(self.distances(z).min()) if len(self.observed) else float(self.n_pos)
        return mean + self.sign * self.weight * dist, mean, dist

    def move_values(self, z: np.ndarray) -> np.ndarray:
        """(P, n_codes) acquisition after setting position p to code c (-inf where not allowed)."""
        comp = self.comp
        leaves = comp.leaf_ids(z[None])[0]
        current = comp.value[leaves]
        total = float(current.sum()) + comp.base_score
        values = total + self.pair_sum @ self._pair_rows(z, current)
        if self.sign != 0.0:
            d = self.distances(z)
            # a point farther than min(d) + 1 stays above every new minimum: leave it out (exact,
            # and N = 10,000 becomes a handful of points)
            close = d <= d.min() + 1
            near = self.observed[close]
            base = d[close][:, None] - (near != z[None, :])  # (near, P)
            nearest_same = np.full((self.n_pos, self.n_codes), np.inf)
            np.minimum.at(nearest_same, (np.broadcast_to(np.arange(self.n_pos), base.shape), near), base)
            new_d = np.minimum(base.min(axis=0)[:, None] + 1, nearest_same)
            values = values + self.sign * self.weight * new_d
        return np.where(self.allowed, values, -np.inf)

    def _pair_rows(self, z: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Per (tree, tested position) pair, the tree's change in value for every code there:
        the rows of the last latent, with the pairs of trees that test a changed position walked
        again (the others see the same codes, so their rows are the same numbers). The array
        returned is the cache itself, updated in place by the next call."""
        if self._walked is None:
            walk = np.arange(len(self.pair_tree))
            rows = np.empty((len(walk), self.n_codes))
        else:
            last_z, rows = self._walked
            changed = np.flatnonzero(last_z != z)
            walk = np.flatnonzero(self.pair_tests[:, changed].any(axis=1))
        comp, codes = self.comp, np.arange(self.n_codes)
        tree, feat = self.pair_tree[walk], self.pair_feat[walk]
        node = np.repeat(comp.roots[tree][:, None], self.n_codes, axis=1)
        for _ in range(comp.max_depth):
            node_feat = comp.feature[node]
            code = np.where(node_feat == feat[:, None], codes[None, :], z[np.maximum(node_feat, 0)])
            go_left = comp.left_mask[node, code]
            node = np.where(go_left, comp.left[node], comp.right[node])
        rows[walk] = comp.value[node] - current[tree][:, None]
        self._walked = (z.copy(), rows)
        return rows


def local_search_acquisition(ensemble: TreeEnsemble, allowed: list[np.ndarray], n_codes: int, starts: np.ndarray,
                             *, observed: np.ndarray | None = None, exploration: str = "none",
                             exploration_weight: float = 0.0, trust_centers: np.ndarray | None = None,
                             trust_radius: int | None = None, exclude: np.ndarray | None = None,
                             max_steps: int = 200) -> list[LocalResult]:
    """Steepest ascent from every row of ``starts`` (flat latents); distinct local optima, best first.

    Moves leaving the trust region (Hamming ``trust_radius`` around some row of
    ``trust_centers``) are not taken; results equal to a row of ``exclude`` are dropped. Starts
    outside the trust region are skipped.
    """
    scorer = IncrementalScorer(ensemble, allowed, n_codes, observed=observed, exploration=exploration,
                               exploration_weight=exploration_weight)
    centers = None if trust_radius is None or trust_centers is None else \
        np.asarray(trust_centers, dtype=np.int64).reshape(-1, scorer.n_pos)
    excluded = set() if exclude is None else {z.tobytes() for z in np.asarray(exclude, dtype=np.int64)}
    results: dict[bytes, LocalResult] = {}
    for start in np.asarray(starts, dtype=np.int64).reshape(-1, scorer.n_pos):
        z = start.copy()
        if centers is not None and not ((centers != z[None]).sum(axis=1) <= trust_radius).any():
            continue
        value = scorer.value(z)[0]
        steps = 0
        for steps in range(1, max_steps + 1):
            moves = scorer.move_values(z)
            moves[np.arange(scorer.n_pos), z] = -np.inf
            if centers is not None:
                dc = (centers != z[None]).sum(axis=1)  # (m,)
                base = dc[:, None] - (centers != z[None])  # (m, P)
                inside = np.zeros_like(moves, dtype=bool)
                for j in range(len(centers)):
                    new_dc = base[j][:, None] + (np.arange(scorer.n_codes)[None, :] != centers[j][:, None])
                    inside |= new_dc <= trust_radius
                moves[~inside] = -np.inf
            improved = False
            for flat in np.argsort(-moves, axis=None, kind="stable")[:16]:
                p, c = divmod(int(flat), scorer.n_codes)
                if moves[p, c] <= value + 1e-12:
                    break
                candidate = z.copy()
                candidate[p] = c
                if candidate.tobytes() in excluded:
                    continue
                z, value, improved = candidate, float(moves[p, c]), True
                break
            if not improved:
                break
        if z.tobytes() in excluded:
            continue
        acq, mean, dist = scorer.value(z)
        key = z.tobytes()
        if key not in results:
            results[key] = LocalResult(z, acq, mean, dist, steps)
    return sorted(results.values(), key=lambda r: -r.value)
