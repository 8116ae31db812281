"""ENTMOOT (cog-imperial/entmoot 2.1.1) wrapped as a baseline, and ENTMOOT's own acquisition model.

Everything goes through ENTMOOT's API: a :class:`entmoot.ProblemConfig` with one categorical
feature per grid position, an :class:`entmoot.Enting` model (LightGBM mean + distance-based
uncertainty) and :class:`entmoot.PyomoOptimizer`, which builds ENTMOOT's Pyomo MILP and solves it.

Solvers (``solver=``), and why some configurations cannot run here:

* ``"highs"`` (default): HiGHS through Pyomo's APPSI interface. ENTMOOT calls
  ``SolverFactory(name, solver_io="python", manage_env=..., options=...)``; the stock
  ``appsi_highs``/``highs`` interfaces reject those keywords, so Pyomo returns an
  ``UnknownSolver`` ("solver_io errors"). :func:`register_highs_adapter` registers the Pyomo solver
  ``entmoot-appsi-highs``: appsi HiGHS with a constructor that accepts (and ignores) ENTMOOT's
  keywords and that records HiGHS' status, bound, gap and run time for each solve.
* ``"gurobi"``: ENTMOOT's :class:`GurobiOptimizer`. The license bundled with gurobipy stops at
  2,000 variables and 2,000 constraints, so it can only run tiny grids (the paper's 8x8x256 is
  16,384 binaries); larger problems raise :class:`EntmootUnavailable` up front.
* ``"cbc"``: CBC through Pyomo's LP-file interface; needs the Debian binary
  (``apt-get install -y coinor-cbc``), otherwise :class:`EntmootUnavailable` names that command.

What ENTMOOT itself cannot do, and what this wrapper does instead: it only supports LightGBM,
makes one proposal per solve and has no notion of masks or of excluding known points. Batches
(q > 1) are solved sequentially: in exploration mode each proposal is added to the distance
model as an observed point before the next solve (ENTMOOT-style), and in both modes every
observed latent and previous proposal is excluded by a no-good cut added to ENTMOOT's model core
(``PyomoOptimizer.solve(model_core=...)``), so proposals are new and distinct. Codes a mask
forbids are fixed to 0 in the model core.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, replace
from typing import Any, Literal, Sequence

import numpy as np

from bench.core.errors import UserError
from bench.core.optimizer import Observations, Optimizer, Proposal
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.optimizers._common import PositionCategories, distinct_batch

#: Name under which :func:`register_highs_adapter` registers the HiGHS adapter in Pyomo.
HIGHS_ADAPTER = "entmoot-appsi-highs"
#: Size limit of the gurobipy bundled ("size-limited") license.
GUROBI_BUNDLED_LIMIT = 2000
CBC_INSTALL = "apt-get update && apt-get install -y coinor-cbc"

Solver = Literal["highs", "gurobi", "cbc"]
AcqSense = Literal["exploration", "penalty"]


class EntmootUnavailable(UserError, RuntimeError):
    """This ENTMOOT configuration cannot run on this machine; the message says why."""


# --- the HiGHS adapter ---------------------------------------------------------------------
def register_highs_adapter() -> str:
    """Register (once) the Pyomo solver :data:`HIGHS_ADAPTER` and return its name.

    The adapter is Pyomo's appsi HiGHS solver whose constructor takes ENTMOOT's keywords
    (``solver_io``, ``manage_env``, ``options``). ``options`` may hold ``{"record": list}``: after
    each solve the adapter appends a dict with ``status``, ``objective``, ``bound``, ``gap`` and
    ``solve_s`` (HiGHS' own run time) to that list, since ENTMOOT discards the solver results.
    """
    import pyomo.environ  # noqa: F401 - registers the stock solvers
    from pyomo.opt import SolverFactory

    if HIGHS_ADAPTER in SolverFactory._cls:
        return HIGHS_ADAPTER
    appsi_highs = SolverFactory._cls["appsi_highs"]

    class EntmootAppsiHighs(appsi_highs):  # type: ignore[misc, valid-type]
        """appsi HiGHS accepting ENTMOOT's SolverFactory keywords and recording each solve."""

        def __init__(self, solver_io: str | None = None, manage_env: bool = False,
                     options: dict[str, Any] | None = None, only_child_vars: bool = False) -> None:
            super().__init__(only_child_vars=only_child_vars)
            self._solve_record: list[dict[str, Any]] | None = (options or {}).get("record")

        def _reinit(self) -> None:
            # appsi re-runs __init__ at every set_instance; keep the record list across it
            record = self._solve_record
            super()._reinit()
            self._solve_record = record

        def solve(self, model: Any, **kwargs: Any) -> Any:
            try:
                results = super().solve(model, **kwargs)
            except RuntimeError as exc:  # appsi raises when there is no solution to load
                raise RuntimeError(f"HiGHS found no feasible solution to ENTMOOT's model: {exc}") from exc
            if self._solve_record is not None:
                highs = self._solver_model
                info = highs.getInfo()
                self._solve_record.append({
                    "status": str(results.solver.termination_condition),
                    "objective": float(info.objective_function_value),
                    "bound": float(info.mip_dual_bound),
                    "gap": float(info.mip_gap),
                    "solve_s": float(highs.getRunTime()),
                })
            return results

    SolverFactory.register(HIGHS_ADAPTER, doc="appsi HiGHS accepting ENTMOOT's solver keywords")(EntmootAppsiHighs)
    return HIGHS_ADAPTER


# --- ENTMOOT's model for given categories ------------------------------------------------
@dataclass(frozen=True)
class EntmootSolution:
    """One solve of ENTMOOT's acquisition model.

    Values are in the *maximisation* sign of the harness (higher is better; with
    ``entmoot_acquisition(maximize=False)`` they stay in ENTMOOT's minimisation sign): ``objective`` is
    ``mean + beta * distance`` in exploration mode and ``mean - beta * distance`` in penalty mode,
    ``bound`` the solver's proven bound on it (NaN when unknown), ``mean`` the
    ensemble's prediction at ``latent`` and ``distance`` ENTMOOT's scaled distance to the nearest
    observed point (Hamming / number of features, in [0, 1]). ``solve_s`` is the solver's own time,
    ``build_s`` the rest of ``PyomoOptimizer.solve`` (building the Pyomo model and handing it over),
    ``status`` the solver's termination condition (``"optimal"``, ``"maxTimeLimit"``, ...). With
    gurobi, ENTMOOT does not return its model: status is ``"unknown"``, bound and gap NaN and
    ``solve_s`` the whole ``GurobiOptimizer.solve`` (build included). ``setup_s`` (only from
    :func:`entmoot_acquisition`) is the fit of ENTMOOT's distance model, which ``Enting.fit`` does
    once per data set: its K x K similarity table per feature takes ~10 s at 64 x 256 (pure Python).
    """

    latent: np.ndarray
    objective: float
    solve_s: float
    status: str
    bound: float
    gap: float
    build_s: float
    mean: float
    distance: float
    setup_s: float = 0.0

    def info(self) -> dict[str, Any]:
        """Flat diagnostics for ``Proposal.info``."""
        return {"solver": "entmoot", "status": self.status, "objective": self.objective, "bound": self.bound,
                "gap": self.gap, "solve_s": self.solve_s, "build_s": self.build_s, "mean": self.mean,
                "distance": self.distance}


def _problem_config(categories: Sequence[np.ndarray], maximize: bool, seed: int) -> Any:
    from entmoot import ProblemConfig

    config = ProblemConfig(rnd_seed=seed)
    for position, codes in enumerate(categories):
        config.add_feature("categorical", [str(int(c)) for c in codes], name=f"p{position}")
    if maximize:
        config.add_max_objective()
    else:
        config.add_min_objective()
    return config


def _encode(categories: Sequence[np.ndarray], latents: np.ndarray) -> np.ndarray:
    """(N, n_features) ENTMOOT encodings (index of the code in each feature's category list)."""
    out = np.empty(latents.shape, dtype=np.int64)
    for feature, codes in enumerate(categories):
        lookup = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
        lookup[codes] = np.arange(len(codes))
        column = latents[:, feature]
        if (column > codes.max()).any() or (lookup[column] < 0).any():
            raise ValueError(f"a latent uses a code at feature {feature} outside its categories")
        out[:, feature] = lookup[column]
    return out


def _model_core(config: Any, allowed: Sequence[np.ndarray] | None, exclude_enc: np.ndarray) -> Any:
    """ENTMOOT's Pyomo model core with forbidden categories fixed to 0 and no-good cuts.

    ``allowed[f]`` is a boolean array over feature ``f``'s categories; ``exclude_enc`` is an
    (M, n_features) array of encoded points the solution must differ from in at least one feature.
    """
    import pyomo.environ as pyo

    core = config.get_pyomo_model_core()
    if allowed is not None:
        for feature, ok in enumerate(allowed):
            for enc in np.flatnonzero(~np.asarray(ok)):
                core._all_feat[feature][int(enc)].fix(0)
    if len(exclude_enc):
        n_features = exclude_enc.shape[1]
        rows = [np.asarray(row) for row in exclude_enc]

        def no_good(model: Any, k: int) -> Any:
            return sum(model._all_feat[f][int(rows[k][f])] for f in range(n_features)) <= n_features - 1

        core.bench_no_good = pyo.Constraint(range(len(rows)), rule=no_good)
    return core


def _solver_params(solver: Solver, time_limit: float, mip_gap: float, seed: int,
                   record: list[dict[str, Any]]) -> dict[str, Any]:
    if solver == "highs":
        return {"solver_name": register_highs_adapter(), "verbose": False,
                "solver_factory_options": {"record": record},
                "solver_options": {"time_limit": float(time_limit), "mip_rel_gap": float(mip_gap),
                                   "threads": 1, "random_seed": int(seed) % (2**31 - 1)}}
    if solver == "cbc":
        check_solver_fits(solver, 0)
        return {"solver_name": "cbc", "solver_io": "lp", "verbose": False,
                "solver_options": {"seconds": float(time_limit), "ratioGap": float(mip_gap), "threads": 1,
                                   "randomSeed": int(seed) % (2**31 - 1) or 1}}
    if solver == "gurobi":
        # OutputFlag first: ENTMOOT sets the parameters in this order and gurobi logs each one
        return {"OutputFlag": 0, "TimeLimit": float(time_limit), "MIPGap": float(mip_gap), "Threads": 1,
                "Seed": int(seed) % (2**31 - 1)}
    raise ValueError(f"solver must be 'highs', 'gurobi' or 'cbc', got {solver!r}")


def check_solver_fits(solver: Solver, n_binaries: int) -> None:
    """Raise :class:`EntmootUnavailable` when ``solver`` cannot handle a model with that many binaries."""
    if solver == "gurobi" and n_binaries > GUROBI_BUNDLED_LIMIT:
        raise EntmootUnavailable(
            f"ENTMOOT with solver 'gurobi' needs {n_binaries} category binaries, more than the "
            f"{GUROBI_BUNDLED_LIMIT} variables gurobipy's bundled license allows; use solver='highs'"
        )
    if solver == "cbc" and shutil.which("cbc") is None:
        raise EntmootUnavailable(f"solver 'cbc' needs the CBC binary; install it with: {CBC_INSTALL}")


def _solve(enting: Any, config: Any, *, solver: Solver, allowed: Sequence[np.ndarray] | None,
           exclude_enc: np.ndarray, time_limit: float, mip_gap: float, seed: int,
           negated: bool) -> EntmootSolution:
    """Build ENTMOOT's model for ``enting`` and solve it once.

    ``negated`` says that ENTMOOT's ensemble predicts minus the harness score (a max objective, or
    a negated booster): the values are then turned back into the maximisation sign.
    """
    record: list[dict[str, Any]] = []
    params = _solver_params(solver, time_limit, mip_gap, seed, record)
    t0 = time.perf_counter()
    if solver == "gurobi":
        result = _solve_gurobi(enting, config, allowed, exclude_enc, params)
    else:
        from entmoot import PyomoOptimizer

        core = _model_core(config, allowed, exclude_enc)
        result = PyomoOptimizer(config, params=params).solve(enting, model_core=core)
    total_s = time.perf_counter() - t0
    # category names are str(code); ENTMOOT decodes the solution to them
    latent = np.array([int(v) for v in result.opt_point], dtype=np.int64)
    stats = record[-1] if record else {}
    solve_s = float(stats.get("solve_s", total_s))
    sign = -1.0 if negated else 1.0  # ENTMOOT minimises: mean_entmoot -/+ beta * distance
    return EntmootSolution(
        latent=latent, objective=sign * float(result.opt_val), solve_s=solve_s,
        status=str(stats.get("status", "unknown")), bound=sign * float(stats.get("bound", math.nan)),
        gap=float(stats.get("gap", math.nan)), build_s=total_s - solve_s,
        mean=sign * float(result.mu_unscaled[0]), distance=float(result.unc_unscaled),
    )


def _solve_gurobi(enting: Any, config: Any, allowed: Sequence[np.ndarray] | None, exclude_enc: np.ndarray,
                  params: dict[str, Any]) -> Any:
    from entmoot import GurobiOptimizer

    core = config.get_gurobi_model_core()
    if allowed is not None:
        for feature, ok in enumerate(allowed):
            for enc in np.flatnonzero(~np.asarray(ok)):
                core._all_feat[feature][int(enc)].ub = 0
    for row in exclude_enc:
        core.addConstr(sum(core._all_feat[f][int(c)] for f, c in enumerate(row)) <= len(row) - 1)
    core.update()
    try:
        return GurobiOptimizer(config, params=params).solve(enting, model_core=core)
    except Exception as exc:  # gurobipy.GurobiError, imported lazily
        if "size-limited" in str(exc):
            raise EntmootUnavailable(f"gurobipy's bundled license cannot solve this model: {exc}") from exc
        raise


# --- the acquisition benchmark entry point -------------------------------------------------
class _NegatedBooster:
    """A LightGBM booster with every leaf value negated (ENTMOOT minimises its ensemble)."""

    def __init__(self, booster: Any) -> None:
        self._booster = booster

    def dump_model(self) -> dict[str, Any]:
        dump = self._booster.dump_model()

        def negate(node: dict[str, Any]) -> None:
            if "leaf_value" in node:
                node["leaf_value"] = -node["leaf_value"]
            for child in ("left_child", "right_child"):
                if child in node:
                    negate(node[child])

        for tree in dump["tree_info"]:
            negate(tree["tree_structure"])
        return dump

    def predict(self, X: np.ndarray) -> np.ndarray:
        return -self._booster.predict(X)


def entmoot_acquisition(booster: Any, observed: np.ndarray, codebook_size: int, *,
                        beta: float = 1.96, acq_sense: AcqSense = "exploration", maximize: bool = True,
                        allowed: np.ndarray | None = None, exclude: np.ndarray | None = None,
                        time_limit: float = 600.0, mip_gap: float = 0.0, solver: Solver = "highs",
                        seed: int = 0) -> EntmootSolution:
    """Solve ENTMOOT's own acquisition MILP for an already-fitted LightGBM ensemble.

    Arguments:
        booster: a fitted ``lightgbm.Booster`` over flat latents, i.e. features ``0..P-1`` (row-major
            grid positions), every feature declared categorical, category value = code in
            ``[0, codebook_size)``. It predicts the quantity to maximise when ``maximize`` (the
            harness' scores), to minimise otherwise.
        observed: (N, P) int array of observed flat latents: ENTMOOT's distance term ("overlap",
            i.e. Hamming, scaled by 1/P) is measured to the nearest of them.
        codebook_size: K; every position is an ENTMOOT categorical feature with categories
            ``"0".."K-1"`` so that ENTMOOT's category encodings equal the booster's codes.
        beta: weight of the distance term; ``beta=0`` optimises the ensemble's prediction alone (the
            distance constraints are still part of ENTMOOT's model).
        acq_sense: ``"exploration"`` rewards distance, ``"penalty"`` penalises it (ENTMOOT's names).
        allowed: optional (P, K) bool mask of allowed codes; forbidden codes are fixed to 0.
        exclude: optional (M, P) latents the solution must differ from (no-good cuts).
        time_limit, mip_gap: solver limits (seconds, relative gap); ``solver`` as in the module doc.
        seed: solver seed.

    Returns an :class:`EntmootSolution`; its first four fields are the proposal ``latent`` ((P,)
    int64 codes), ``objective`` (maximisation sign when ``maximize``: mean +/- beta * distance, see
    :class:`EntmootSolution`), ``solve_s`` (solver time; ``build_s`` is Pyomo's model building on
    top) and ``status``; ``bound`` is the solver's proven bound on ``objective``; ``setup_s`` the
    distance-model fit that ENTMOOT does at fit time (not part of its acquisition solve).
    """
    from entmoot import Enting

    observed = np.asarray(observed, dtype=np.int64)
    n_positions = observed.shape[1]
    codebook_size = int(codebook_size)
    check_solver_fits(solver, n_positions * codebook_size)
    categories = [np.arange(codebook_size)] * n_positions
    config = _problem_config(categories, maximize=False, seed=seed)
    enting = Enting(config, params={"unc_params": {"beta": float(beta), "acq_sense": acq_sense,
                                                   "cat_metric": "overlap"}})
    # ENTMOOT has no public setter for an already-fitted ensemble: Enting.fit would retrain.
    # TreeEnsemble keeps its boosters in _tree_dict (objective name -> booster), read through
    # dump_model() when the MILP is built, so the fitted booster goes there.
    objective_name = config.obj_list[0].name
    enting.mean_model._tree_dict = {objective_name: _NegatedBooster(booster) if maximize else booster}
    t0 = time.perf_counter()
    enting.unc_model.fit(observed, np.zeros((len(observed), 1)))
    setup_s = time.perf_counter() - t0
    mask_rows = None if allowed is None else [np.asarray(row, dtype=bool) for row in np.asarray(allowed)]
    exclude_enc = np.zeros((0, n_positions), dtype=np.int64) if exclude is None else np.asarray(exclude, np.int64)
    solution = _solve(enting, config, solver=solver, allowed=mask_rows, exclude_enc=exclude_enc,
                      time_limit=time_limit, mip_gap=mip_gap, seed=seed, negated=maximize)
    return replace(solution, setup_s=setup_s)


# --- the optimizer ------------------------------------------------------------------------
# no "gurobi" preset: the bundled license only fits toy grids (use --opt solver=gurobi there)
@register_optimizer("entmoot", presets={"penalty": {"acq_sense": "penalty"}}, package="entmoot")
class Entmoot(Optimizer):
    """ENTMOOT 2.1.1 as a baseline: LightGBM fitted by ENTMOOT, distance-based exploration, MILP via Pyomo.

    One ENTMOOT feature per grid position whose categories are the codes allowed there (plus any
    code the data use there, fixed to 0 in the model); positions with a single category are fixed.
    LightGBM's parameters: ENTMOOT's own (``num_boost_round``, ``max_depth``, ``min_data_in_leaf``,
    ``min_data_per_group``) plus the categorical ones that decide whether it learns more than
    stumps (``cat_smooth``, ``cat_l2``, ``max_cat_to_onehot``), ``learning_rate`` and
    ``bagging_fraction`` (row subsampling every round, the seeded part of the surrogate: without
    it LightGBM is deterministic and two seeds would propose the same points); ``lgbm_params``
    adds any other LightGBM parameter. ``solver``/``time_limit``/``mip_gap`` as in the module doc.
    """

    def __init__(self, space: CodeGrid, seed: int, beta: float = 1.96, acq_sense: AcqSense = "exploration",
                 solver: Solver = "highs", time_limit: float = 120.0, mip_gap: float = 1e-4,
                 num_boost_round: int = 100, max_depth: int = 3, min_data_in_leaf: int = 1,
                 min_data_per_group: int = 1, cat_smooth: float = 1.0, cat_l2: float = 1.0,
                 max_cat_to_onehot: int = 4, learning_rate: float = 0.1, bagging_fraction: float = 0.8,
                 lgbm_params: dict[str, Any] | None = None) -> None:
        super().__init__(space, seed)
        if acq_sense not in ("exploration", "penalty"):
            raise ValueError(f"acq_sense must be 'exploration' or 'penalty', got {acq_sense!r}")
        if solver not in ("highs", "gurobi", "cbc"):
            raise ValueError(f"solver must be 'highs', 'gurobi' or 'cbc', got {solver!r}")
        # fail at construction, not as a silent per-batch fallback, when the solver cannot run
        check_solver_fits(solver, int(space.allowed_mask().sum()))
        self.beta = float(beta)
        self.acq_sense: AcqSense = acq_sense
        self.solver: Solver = solver
        self.time_limit = float(time_limit)
        self.mip_gap = float(mip_gap)
        self.train_params = {"num_boost_round": int(num_boost_round), "max_depth": int(max_depth),
                             "min_data_in_leaf": int(min_data_in_leaf),
                             "min_data_per_group": int(min_data_per_group)}
        self.extra_lgbm_params = {"cat_smooth": float(cat_smooth), "cat_l2": float(cat_l2),
                                  "max_cat_to_onehot": int(max_cat_to_onehot),
                                  "learning_rate": float(learning_rate),
                                  "bagging_fraction": float(bagging_fraction),
                                  "bagging_freq": 1 if bagging_fraction < 1.0 else 0,
                                  # one thread and deterministic mode: same seed, same trees, anywhere
                                  "num_threads": 1, "deterministic": True, "force_col_wise": True,
                                  **(lgbm_params or {})}

    def _fit(self, config: Any, latents_enc: np.ndarray, scores: np.ndarray) -> Any:
        from entmoot import Enting

        enting = Enting(config, params={
            "unc_params": {"beta": self.beta, "acq_sense": self.acq_sense, "cat_metric": "overlap"},
            "tree_train_params": {"train_params": self.train_params},
        })
        # ENTMOOT's TrainParams only knows its own eight fields; the LightGBM parameter dict it
        # trains with is TreeEnsemble._train_params, so the categorical parameters go there
        enting.mean_model._train_params.update(self.extra_lgbm_params)
        categories = [feat.cat_list for feat in config.feat_list]
        rows = [[categories[f][int(c)] for f, c in enumerate(row)] for row in latents_enc]
        enting.fit(rows, scores.reshape(-1, 1))
        return enting

    def propose(self, n: int, data: Observations) -> Proposal:
        space = data.space
        flat = data.flat
        positions = PositionCategories.of(data)
        allowed, free, categories = positions.allowed, positions.free, positions.categories
        fixed_value = positions.fixed
        if len(free) == 0:  # nothing to optimise: one latent in the whole space
            return Proposal(distinct_batch(n, data, lambda m: space.sample(m, self.rng)))
        allowed_rows = [allowed[p, codes] for p, codes in zip(free, categories)]
        seed = int(self.rng.integers(2**31 - 1))
        config = _problem_config(categories, maximize=True, seed=seed)
        observed_enc = _encode(categories, flat[:, free])
        enting = self._fit(config, observed_enc, np.asarray(data.scores, dtype=np.float64))
        exclude_enc = np.unique(observed_enc, axis=0)
        distance_points = observed_enc
        proposals: list[np.ndarray] = []
        infos: list[dict[str, Any]] = []
        for _ in range(n):
            solution = _solve(enting, config, solver=self.solver, allowed=allowed_rows, exclude_enc=exclude_enc,
                              time_limit=self.time_limit, mip_gap=self.mip_gap, seed=seed, negated=True)
            latent = fixed_value.copy()
            latent[free] = solution.latent
            proposals.append(latent.reshape(space.shape))
            infos.append(solution.info())
            new_enc = _encode(categories, solution.latent[None])
            exclude_enc = np.concatenate([exclude_enc, new_enc])
            if self.acq_sense == "exploration" and len(proposals) < n:
                # ENTMOOT-style batch: the proposal counts as observed for the distance term
                distance_points = np.concatenate([distance_points, new_enc])
                enting.unc_model.fit(distance_points, np.zeros((len(distance_points), 1)))
        timed_out = any(i["status"] == "maxTimeLimit" for i in infos)
        return Proposal(np.stack(proposals).astype(np.int64), tuple(infos), load_dependent=timed_out)
