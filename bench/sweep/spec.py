"""Sweep specs: a TOML file that expands into tasks x methods x seeds run configurations.

The format is documented in ``slurm/README.md``; in short::

    name = "demo"
    seeds = [0, 1, 2]
    tasks = ["closed-form", {name = "closed-form", params = {height = 2}}]
    [run]                 # RunConfig defaults for every run
    budget = 30
    [run.metrics]
    every = 10
    [[method]]            # one entry per method; label defaults to optimizer
    optimizer = "random"
    [executor]
    profile = "local"
    runs_per_job = 4

Every key is checked: an unknown one raises :class:`bench.config.ConfigError` naming it.
Expansion is pure; :func:`write_resolved` records the result next to the sweep's runs.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.config import ConfigError, RunConfig
from bench.store.files import read_json, write_json
from bench.core.registry import optimizer_spec, task_spec
from bench.run.runner import run_folder

SWEEP_FILE = "sweep.json"

_TOP_KEYS = ("name", "seeds", "tasks", "run", "method", "executor")
_TASK_KEYS = ("name", "params")
#: run options shared by every run ([run]) and overridable per method
_RUN_KEYS = ("budget", "batch_size", "n_initial", "retrain", "metrics")
_METHOD_KEYS = ("optimizer", "label", "optimizer_params", *_RUN_KEYS)
_NESTED_RUN_KEYS = ("retrain", "metrics")  # tables merged key by key, method over [run]
_EXECUTOR_KEYS = ("profile", "runs_per_job")


@dataclass(frozen=True)
class ExecutorOptions:
    """The spec's ``[executor]`` table: cluster profile name and runs packed per job."""

    profile: str = "local"
    runs_per_job: int = 4


@dataclass(frozen=True)
class SweepSpec:
    """A parsed and expanded sweep: its name, every run configuration and executor options."""

    name: str
    runs: tuple[RunConfig, ...]
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)
    source: dict[str, Any] = field(default_factory=dict)


def _check_keys(table: Any, valid: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    for key in table:
        if key not in valid:
            raise ConfigError(f"unknown key {key!r} in {where}; valid keys: {', '.join(valid)}")
    return table


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} must be a whole number >= 1, got {value!r}")
    return value


def _seeds(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"seeds must be a non-empty list of whole numbers, got {value!r}")
    for seed in value:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seeds must hold whole numbers >= 0, got {seed!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"seeds must not repeat, got {value!r}")
    return list(value)


def _tasks(value: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"tasks must be a non-empty list of names or {{name, params}} tables, got {value!r}")
    out = []
    for i, entry in enumerate(value):
        if isinstance(entry, str):
            entry = {"name": entry}
        entry = _check_keys(entry, _TASK_KEYS, f"tasks[{i}]")
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            raise ConfigError(f"tasks[{i}] needs a 'name'")
        params = entry.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"tasks[{i}].params must be a table, got {params!r}")
        out.append((entry["name"], dict(params)))
    return out


def _merge_run_options(defaults: dict[str, Any], method: dict[str, Any]) -> dict[str, Any]:
    """[run] options overridden by the method's; retrain/metrics tables merge key by key."""
    merged = {k: v for k, v in defaults.items()}
    for key in _RUN_KEYS:
        if key not in method:
            continue
        if key in _NESTED_RUN_KEYS and isinstance(method[key], dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **method[key]}
        else:
            merged[key] = method[key]
    return merged


def parse_spec(data: dict[str, Any], default_name: str = "sweep") -> SweepSpec:
    """Validate a spec mapping and expand it into run configs (task, then method, then seed order).

    Task and optimizer names and their parameters are checked against the registry here, so a
    typo fails before anything is submitted.
    """
    _check_keys(data, _TOP_KEYS, "the sweep spec")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"name must be a non-empty name without '/', got {name!r}")
    for key in ("seeds", "tasks", "method"):
        if key not in data:
            raise ConfigError(f"missing required key {key!r} in the sweep spec")
    seeds = _seeds(data["seeds"])
    tasks = _tasks(data["tasks"])
    run_defaults = dict(_check_keys(data.get("run", {}), _RUN_KEYS, "[run]"))
    methods = data["method"]
    if not isinstance(methods, list) or not methods:
        raise ConfigError("method must be one or more [[method]] tables")
    executor_table = _check_keys(data.get("executor", {}), _EXECUTOR_KEYS, "[executor]")
    executor = ExecutorOptions(
        profile=str(executor_table.get("profile", ExecutorOptions.profile)),
        runs_per_job=_positive_int(executor_table.get("runs_per_job", ExecutorOptions.runs_per_job),
                                   "executor.runs_per_job"))

    parsed_methods: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (method table, merged run options)
    labels: set[str] = set()
    for i, method in enumerate(methods):
        method = _check_keys(method, _METHOD_KEYS, f"[[method]] #{i + 1}")
        if not isinstance(method.get("optimizer"), str) or not method["optimizer"]:
            raise ConfigError(f"[[method]] #{i + 1} needs an 'optimizer'")
        label = method.get("label", method["optimizer"])
        if label in labels:
            raise ConfigError(f"[[method]] #{i + 1}: label {label!r} is used twice; give each method its own label")
        labels.add(label)
        optimizer_params = method.get("optimizer_params", {})
        if not isinstance(optimizer_params, dict):
            raise ConfigError(f"[[method]] #{i + 1}: optimizer_params must be a table")
        optimizer_spec(method["optimizer"]).resolved_params(optimizer_params)
        parsed_methods.append((method, _merge_run_options(run_defaults, method)))
    for task_name, task_params in tasks:
        task_spec(task_name).resolved_params(task_params)

    # task-major order: consecutive runs share a task, so packing them into jobs loads each model once
    runs = [RunConfig.from_dict({**options, "task": task_name, "task_params": task_params,
                                 "optimizer": method["optimizer"], "optimizer_params": method.get("optimizer_params", {}),
                                 "label": method.get("label"), "seed": seed})
            for task_name, task_params in tasks for method, options in parsed_methods for seed in seeds]
    _check_unique_folders(runs)
    return SweepSpec(name=name, runs=tuple(runs), executor=executor, source=data)


def _check_unique_folders(runs: list[RunConfig]) -> None:
    """Two runs in one folder would overwrite each other (e.g. one task listed twice with other params)."""
    seen: dict[tuple[str, str, str], RunConfig] = {}
    for config in runs:
        parts = config.run_dir_parts()
        if parts in seen:
            raise ConfigError(f"two runs would share the folder {'/'.join(parts)}: list each task once "
                              "(use a task preset name, e.g. closed-form/small, to sweep task parameters)")
        seen[parts] = config


def load_spec(path: Path) -> SweepSpec:
    """Read and expand a TOML sweep spec; the name defaults to the file's stem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"sweep spec {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"sweep spec {str(path)!r} is not valid TOML: {exc}") from None
    return parse_spec(data, default_name=path.stem)


def resolved_dict(spec: SweepSpec, sweep_dir: Path) -> dict[str, Any]:
    """What ``sweep.json`` holds: the spec as written plus every expanded run with id and folder."""
    return {
        "name": spec.name,
        "spec": spec.source,
        "executor": {"profile": spec.executor.profile, "runs_per_job": spec.executor.runs_per_job},
        "runs": [{"run_id": c.run_id, "folder": str(run_folder(sweep_dir, c).path.relative_to(sweep_dir)),
                  "config": c.to_dict()} for c in spec.runs],
    }


def write_resolved(spec: SweepSpec, sweep_dir: Path) -> Path:
    """Atomically write ``<sweep_dir>/sweep.json``; refuse to mix two different sweeps in one folder."""
    path = Path(sweep_dir) / SWEEP_FILE
    resolved = resolved_dict(spec, Path(sweep_dir))
    if path.exists():
        old = read_json(path)
        old_ids = {r["run_id"] for r in old.get("runs", [])}
        new_ids = {r["run_id"] for r in resolved["runs"]}
        if old.get("name") != spec.name:
            raise ConfigError(f"{str(sweep_dir)!r} holds sweep {old.get('name')!r}, not {spec.name!r}; "
                              "choose another --out")
        if not old_ids <= new_ids:
            # an edited spec may add runs; keep the old ones listed so status still shows them
            resolved["runs"] += [r for r in old["runs"] if r["run_id"] not in new_ids]
    write_json(path, resolved)
    return path


def read_resolved_runs(sweep_dir: Path) -> list[RunConfig]:
    """The run configs listed in ``<sweep_dir>/sweep.json`` (empty when the file is absent)."""
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.exists():
        return []
    return [RunConfig.from_dict(entry["config"]) for entry in read_json(path).get("runs", [])]
