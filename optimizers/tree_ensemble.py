"""One representation of a fitted tree ensemble over categorical codes, with adapters.

Every split sends a *set of codes* to its left child: a categorical split lists them, a numeric
split (``x < threshold``) implies them. Adapters read fitted LightGBM (``dump_model``),
XGBoost (``save_raw("json")``, categorical splits enabled) and CatBoost (JSON export, one-hot
categorical splits or float borders) models into this form, so the acquisition MILP and the
local search never depend on the library that trained the surrogate.

Conventions: a latent is a row of integer codes, one per feature (flattened grid position);
``predict`` adds the leaves reached in every tree and ``base_score``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tree:
    """One regression tree; node 0 is the root.

    ``feature[k]`` is -1 at a leaf. At a categorical split (``categories[k]`` not None) the listed
    codes go left when ``listed_left[k]``, else they go right (XGBoost's convention) and all
    others go left. At a numeric split codes ``x < threshold[k]`` go left. ``value[k]`` is the
    leaf value.
    """

    feature: np.ndarray
    threshold: np.ndarray
    categories: tuple[np.ndarray | None, ...]
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    listed_left: np.ndarray

    @property
    def n_nodes(self) -> int:
        """Number of nodes, leaves included."""
        return len(self.feature)

    def is_leaf(self, node: int) -> bool:
        """Whether ``node`` is a leaf."""
        return bool(self.feature[node] < 0)

    def left_mask(self, node: int, n_codes: int) -> np.ndarray:
        """Boolean (n_codes,) array: which codes go to the left child of split ``node``."""
        cats = self.categories[node]
        if cats is not None:
            mask = np.zeros(n_codes, dtype=bool)
            inside = cats[(cats >= 0) & (cats < n_codes)]
            mask[inside] = True
            return mask if self.listed_left[node] else ~mask
        return np.arange(n_codes) < self.threshold[node]

    def leaves_under(self) -> list[np.ndarray]:
        """For every node, the sorted array of leaf ids in its subtree."""
        out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * self.n_nodes
        order: list[int] = []
        stack = [0]
        while stack:
            k = stack.pop()
            order.append(k)
            if self.feature[k] >= 0:
                stack.extend((int(self.left[k]), int(self.right[k])))
        for k in reversed(order):
            if self.feature[k] < 0:
                out[k] = np.array([k], dtype=np.int64)
            else:
                out[k] = np.concatenate([out[int(self.left[k])], out[int(self.right[k])]])
        return out

    def depth(self) -> int:
        """Length of the longest root-to-leaf path."""
        best, stack = 0, [(0, 0)]
        while stack:
            k, d = stack.pop()
            if self.feature[k] < 0:
                best = max(best, d)
            else:
                stack.extend(((int(self.left[k]), d + 1), (int(self.right[k]), d + 1)))
        return best


def _tree(feature: Any, threshold: Any, categories: Any, left: Any, right: Any, value: Any,
          listed_left: Any = None) -> Tree:
    n = len(feature)
    return Tree(np.asarray(feature, dtype=np.int64), np.asarray(threshold, dtype=np.float64),
                tuple(categories), np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64),
                np.asarray(value, dtype=np.float64),
                np.ones(n, dtype=bool) if listed_left is None else np.asarray(listed_left, dtype=bool))


@dataclass(frozen=True)
class CompiledEnsemble:
    """All trees' nodes in flat arrays with a (n_nodes, n_codes) left-mask, for fast batch scoring."""

    n_codes: int
    roots: np.ndarray  # (T,) global id of each tree's root
    feature: np.ndarray  # (n_nodes,), -1 at leaves
    left: np.ndarray  # (n_nodes,), self at leaves so that walking past a leaf stays there
    right: np.ndarray
    value: np.ndarray
    left_mask: np.ndarray  # (n_nodes, n_codes) bool
    max_depth: int
    base_score: float

    def leaf_ids(self, X: np.ndarray) -> np.ndarray:
        """Global leaf id reached in every tree, (n, T), for integer codes ``X`` (n, n_features)."""
        X = np.asarray(X, dtype=np.int64)
        node = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        rows = np.arange(len(X))[:, None]
        for _ in range(self.max_depth):
            feat = self.feature[node]
            code = X[rows, np.maximum(feat, 0)]
            go_left = self.left_mask[node, code]
            node = np.where(go_left, self.left[node], self.right[node])
        return node

    def splits_on_path(self, z: np.ndarray) -> np.ndarray:
        """Global ids of the split nodes that the latent ``z`` (n_features,) passes through."""
        z = np.asarray(z, dtype=np.int64).reshape(-1)
        node, visited = self.roots.copy(), []
        for _ in range(self.max_depth):
            split = node[self.feature[node] >= 0]
            visited.append(split)
            node = np.where(self.left_mask[split, z[self.feature[split]]], self.left[split], self.right[split])
        return np.concatenate(visited) if visited else np.empty(0, dtype=np.int64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for integer codes ``X`` (n, n_features)."""
        return self.value[self.leaf_ids(X)].sum(axis=1) + self.base_score


@dataclass(frozen=True)
class TreeEnsemble:
    """A sum of regression trees plus ``base_score`` over ``n_features`` categorical features."""

    trees: tuple[Tree, ...]
    base_score: float
    n_features: int
    _compiled: dict[int, CompiledEnsemble] = field(default_factory=dict, repr=False, compare=False)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for codes ``X`` (n, n_features) (any numeric dtype; integer codes expected)."""
        X = np.asarray(X, dtype=np.float64)
        out = np.full(len(X), self.base_score, dtype=np.float64)
        rows = np.arange(len(X))
        for tree in self.trees:
            node = np.zeros(len(X), dtype=np.int64)
            for _ in range(tree.depth()):
                feat = tree.feature[node]
                split = feat >= 0
                if not split.any():
                    break
                x = X[rows, np.maximum(feat, 0)]
                go_left = x < tree.threshold[node]
                for k in np.unique(node[split]):
                    cats = tree.categories[k]
                    if cats is not None:
                        at = node == k
                        go_left[at] = np.isin(x[at], cats) == tree.listed_left[k]
                node = np.where(split, np.where(go_left, tree.left[node], tree.right[node]), node)
            out += tree.value[node]
        return out

    def compiled(self, n_codes: int) -> CompiledEnsemble:
        """Flat arrays for batch scoring of codes in [0, n_codes) (cached per n_codes)."""
        if n_codes in self._compiled:
            return self._compiled[n_codes]
        sizes = [t.n_nodes for t in self.trees]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        n = int(offsets[-1])
        feature = np.full(n, -1, dtype=np.int64)
        left = np.arange(n, dtype=np.int64)
        right = np.arange(n, dtype=np.int64)
        value = np.zeros(n)
        left_mask = np.zeros((n, n_codes), dtype=bool)
        for t, tree in enumerate(self.trees):
            o = offsets[t]
            feature[o:o + tree.n_nodes] = tree.feature
            value[o:o + tree.n_nodes] = np.where(tree.feature < 0, tree.value, 0.0)
            for k in np.flatnonzero(tree.feature >= 0):
                left[o + k] = o + tree.left[k]
                right[o + k] = o + tree.right[k]
                left_mask[o + k] = tree.left_mask(int(k), n_codes)
        comp = CompiledEnsemble(n_codes, offsets[:-1].copy(), feature, left, right, value, left_mask,
                                max((t.depth() for t in self.trees), default=0), self.base_score)
        self._compiled[n_codes] = comp
        return comp

    def scaled(self, factor: float) -> TreeEnsemble:
        """The ensemble multiplied by ``factor`` (e.g. -1 to turn a minimisation into a maximisation)."""
        trees = tuple(Tree(t.feature, t.threshold, t.categories, t.left, t.right, t.value * factor,
                           t.listed_left) for t in self.trees)
        return TreeEnsemble(trees, self.base_score * factor, self.n_features)

    def used_features(self) -> np.ndarray:
        """Sorted features that at least one split tests."""
        feats = [t.feature[t.feature >= 0] for t in self.trees]
        return np.unique(np.concatenate(feats)) if feats else np.empty(0, dtype=np.int64)

    @property
    def n_leaves(self) -> int:
        """Total number of leaves."""
        return int(sum((t.feature < 0).sum() for t in self.trees))

    def __getstate__(self) -> dict[str, Any]:  # the compiled cache is rebuilt on demand
        return {"trees": self.trees, "base_score": self.base_score, "n_features": self.n_features}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_compiled", {})


class _TreeBuilder:
    """Collects nodes in depth-first order for :func:`_tree` (adapters build trees recursively)."""

    def __init__(self) -> None:
        self.feature: list[int] = []
        self.threshold: list[float] = []
        self.categories: list[np.ndarray | None] = []
        self.left: list[int] = []
        self.right: list[int] = []
        self.value: list[float] = []

    def leaf(self, value: float) -> int:
        """Append a leaf; return its index."""
        return self._append(-1, np.nan, None, float(value))

    def split(self, feature: int, threshold: float, categories: np.ndarray | None) -> int:
        """Append a split node whose children are set later with :meth:`children`."""
        return self._append(int(feature), threshold, categories, 0.0)

    def children(self, node: int, left: int, right: int) -> None:
        self.left[node], self.right[node] = left, right

    def _append(self, feature: int, threshold: float, categories: np.ndarray | None, value: float) -> int:
        self.feature.append(feature)
        self.threshold.append(threshold)
        self.categories.append(categories)
        self.left.append(-1)
        self.right.append(-1)
        self.value.append(value)
        return len(self.feature) - 1

    def build(self) -> Tree:
        return _tree(self.feature, self.threshold, self.categories, self.left, self.right, self.value)


# --- LightGBM -------------------------------------------------------------------------------


def from_lightgbm(booster: Any) -> TreeEnsemble:
    """Read a fitted ``lightgbm.Booster`` (regression) through ``dump_model``.

    Categorical splits (``==``) list the codes that go left; numeric splits (``<=``) send
    ``x <= threshold`` left. Any initial score is already folded into the first tree's leaves.
    """
    model = booster.dump_model()
    trees = []
    for info in model["tree_info"]:
        tree = _TreeBuilder()

        def add(node: dict[str, Any]) -> int:
            if "leaf_value" in node or "split_feature" not in node:
                return tree.leaf(float(node.get("leaf_value", 0.0)))
            if node["decision_type"] == "==":
                cats = np.array(sorted(int(c) for c in str(node["threshold"]).split("||")), dtype=np.int64)
                k = tree.split(int(node["split_feature"]), np.nan, cats)
            elif node["decision_type"] == "<=":
                if node.get("missing_type") == "Zero":
                    raise ValueError("LightGBM numeric split with zero_as_missing is not supported")
                k = tree.split(int(node["split_feature"]), float(np.nextafter(float(node["threshold"]), np.inf)), None)
            else:
                raise ValueError(f"unsupported LightGBM decision type {node['decision_type']!r}")
            tree.children(k, add(node["left_child"]), add(node["right_child"]))
            return k

        add(info["tree_structure"])
        trees.append(tree.build())
    return TreeEnsemble(tuple(trees), 0.0, int(model["max_feature_idx"]) + 1)


# --- XGBoost --------------------------------------------------------------------------------


def _xgb_base_score(text: str) -> float:
    return float(str(text).strip("[]").split(",")[0])


def from_xgboost(booster: Any) -> TreeEnsemble:
    """Read a fitted ``xgboost.Booster`` (``reg:squarederror``, gbtree) through its JSON model.

    Numeric splits send ``x < split_condition`` left. Categorical splits (``enable_categorical``)
    store the codes that go *right*; the complement goes left. The margin adds ``base_score``.
    """
    model = json.loads(bytes(booster.save_raw("json")))
    learner = model["learner"]
    objective = learner.get("objective", {}).get("name", "reg:squarederror")
    if objective not in ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror"):
        raise ValueError(f"only identity-link regression boosters are supported, got {objective!r}")
    gb = learner["gradient_booster"]
    if gb.get("name") != "gbtree":
        raise ValueError(f"only gbtree boosters are supported, got {gb.get('name')!r}")
    n_features = int(learner["learner_model_param"]["num_feature"])
    base = _xgb_base_score(learner["learner_model_param"]["base_score"])
    trees = []
    for raw in gb["model"]["trees"]:
        lc = np.asarray(raw["left_children"], dtype=np.int64)
        rc = np.asarray(raw["right_children"], dtype=np.int64)
        cond = np.asarray(raw["split_conditions"], dtype=np.float64)
        feat = np.where(lc < 0, -1, np.asarray(raw["split_indices"], dtype=np.int64))
        cats: list[np.ndarray | None] = [None] * len(lc)
        split_type = raw.get("split_type", [0] * len(lc))
        seg = dict(zip(raw.get("categories_nodes", []), zip(raw.get("categories_segments", []),
                                                                raw.get("categories_sizes", []))))
        all_cats = np.asarray(raw.get("categories", []), dtype=np.int64)
        for k in range(len(lc)):
            if lc[k] >= 0 and split_type[k] == 1:
                start, size = seg.get(k, (0, 0))
                cats[k] = np.sort(all_cats[start:start + size])
        # numeric conditions are float32 in XGBoost; leaf values live in split_conditions too
        threshold = np.where(lc < 0, np.nan, np.asarray(cond, dtype=np.float32).astype(np.float64))
        value = np.where(lc < 0, cond, 0.0)
        trees.append(_tree(feat, threshold, cats, lc, rc, value, np.zeros(len(lc), dtype=bool)))
    return TreeEnsemble(tuple(trees), base, n_features)


# --- CatBoost -------------------------------------------------------------------------------


def from_catboost(model: Any, pool: Any = None) -> TreeEnsemble:
    """Read a fitted CatBoost regressor (symmetric or depthwise/lossguide trees) through its JSON export.

    Categorical features must be one-hot split (``one_hot_max_size`` at least the number of
    distinct codes seen), so that every split is "code == c", which this representation holds
    exactly; target-statistic (CTR) splits raise ``ValueError``. Float features split on
    ``x > border``. ``pool`` (the training Pool) is needed to map one-hot hashes back to codes
    when the model has categorical features.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.json")
        model.save_model(path, format="json", pool=pool)
        with open(path) as fh:
            data = json.load(fh)
    info = data["features_info"]
    float_flat = {f["feature_index"]: f["flat_feature_index"] for f in info.get("float_features", [])}
    cat_flat = {f["feature_index"]: f["flat_feature_index"] for f in info.get("categorical_features", [])}
    n_features = 1 + max(list(float_flat.values()) + list(cat_flat.values()), default=-1)
    hashes = info.get("cat_features_hash", data.get("cat_features_hash", []))
    # hashes are listed as uint32 but splits store them as int32
    hash_to_code = {int(h["hash"]) & 0xFFFFFFFF: int(float(h["value"])) for h in hashes or []}
    scale, biases = data.get("scale_and_bias", [1.0, [0.0]])
    bias = float(biases[0] if isinstance(biases, list) else biases)

    def describe(split: dict[str, Any]) -> tuple[int, float, np.ndarray | None, bool]:
        return _catboost_split(split, float_flat, cat_flat, hash_to_code)

    if "oblivious_trees" in data:
        trees = [_catboost_oblivious(raw, float(scale), describe) for raw in data["oblivious_trees"]]
    elif "trees" in data:
        trees = [_catboost_depthwise(raw, float(scale), describe) for raw in data["trees"]]
    else:
        raise ValueError("CatBoost model without 'oblivious_trees' or 'trees' in its JSON export: "
                         f"unsupported model format (keys: {sorted(data)})")
    return TreeEnsemble(tuple(trees), bias, n_features)


def _catboost_oblivious(raw: dict[str, Any], scale: float, describe: Any) -> Tree:
    """One symmetric tree: one split per level; the leaf index has bit d set when split d holds.

    Builds a complete tree: a node at level d tests splits[d].
    """
    splits = raw.get("splits", [])
    leaf_values = np.asarray(raw["leaf_values"], dtype=np.float64) * scale
    depth = len(splits)
    tree = _TreeBuilder()
    split_desc = [describe(s) for s in splits]

    def add(level: int, leaf_index: int) -> int:
        if level == depth:
            return tree.leaf(float(leaf_values[leaf_index]))
        feat, thr, cats, holds_left = split_desc[level]
        k = tree.split(feat, thr, cats)
        holds = add(level + 1, leaf_index | (1 << level))
        fails = add(level + 1, leaf_index)
        tree.children(k, *((holds, fails) if holds_left else (fails, holds)))
        return k

    add(0, 0)
    return tree.build()


def _catboost_depthwise(raw: dict[str, Any], scale: float, describe: Any) -> Tree:
    """One non-symmetric tree (``grow_policy`` Depthwise or Lossguide): nested nodes with a
    ``split`` and ``left``/``right`` children, leaves with a ``value``; the split holds on the right."""
    tree = _TreeBuilder()

    def add(node: dict[str, Any]) -> int:
        if "split" not in node:
            value = node["value"]
            return tree.leaf(float(value[0] if isinstance(value, list) else value) * scale)
        feat, thr, cats, holds_left = describe(node["split"])
        k = tree.split(feat, thr, cats)
        fails, holds = add(node["left"]), add(node["right"])
        tree.children(k, *((holds, fails) if holds_left else (fails, holds)))
        return k

    add(raw)
    return tree.build()


def _catboost_split(split: dict[str, Any], float_flat: dict[int, int], cat_flat: dict[int, int],
                    hash_to_code: dict[int, int]) -> tuple[int, float, np.ndarray | None, bool]:
    """(feature, threshold, left codes, whether the "holds" branch is the left child)."""
    kind = split["split_type"]
    if kind == "FloatFeature":
        # holds when x > border; the left child (x <= border) is the failing branch
        border = float(np.float32(split["border"]))
        return float_flat[split["float_feature_index"]], float(np.nextafter(border, np.inf)), None, False
    if kind == "OneHotFeature":
        code = hash_to_code.get(int(split["value"]) & 0xFFFFFFFF)
        if code is None:
            raise ValueError("CatBoost one-hot split on an unknown category hash (pass the training pool)")
        return cat_flat[split["cat_feature_index"]], np.nan, np.array([code], dtype=np.int64), True
    raise ValueError(f"CatBoost split type {kind!r} (CTR) is not exactly representable; "
                     "raise one_hot_max_size above the number of codes")
