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

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.config import MAX_SEED, ConfigError, RunConfig
from bench.core.registry import optimizer_spec, task_spec
from bench.run.runner import run_folder
from bench.store.files import StoreError
from bench.store.sweep_folder import SWEEP_FILE, SweepFolder

#: sweep names become folder names: no path separators, no "..", no hidden names
VALID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_TOP_KEYS = ("name", "seeds", "tasks", "run", "method", "executor")
_TASK_KEYS = ("name", "params")
#: run options shared by every run ([run]) and overridable per method
_RUN_KEYS = ("budget", "batch_size", "n_initial", "retrain", "metrics", "limits")
_METHOD_KEYS = ("optimizer", "label", "optimizer_params", *_RUN_KEYS)
_NESTED_RUN_KEYS = ("retrain", "metrics", "limits")  # tables merged key by key, method over [run]
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
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"seeds must hold whole numbers from 0 to {MAX_SEED}, got {seed!r}")
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
    if not isinstance(name, str) or not VALID_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"name must be letters, digits, '.', '_' or '-' (no '/', no '..', not starting with '.'), "
                          f"got {name!r}")
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
    if path.is_dir():
        raise ConfigError(f"sweep spec {str(path)!r} is a folder; give a .toml file, e.g. slurm/specs/demo.toml")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"sweep spec {str(path)!r} not found") from None
    except OSError as exc:
        raise ConfigError(f"sweep spec {str(path)!r} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"sweep spec {str(path)!r} is not UTF-8 text; is it a TOML file?") from None
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


def write_resolved(spec: SweepSpec, sweep: SweepFolder) -> Path:
    """Write ``sweep.json``; refuse to mix two different sweeps in one folder.

    An edited spec may add runs or change them (e.g. an extended budget): each folder is listed
    once, with the spec's current config; folders the spec no longer names stay listed.
    """
    resolved = resolved_dict(spec, sweep.path)
    old = sweep.read_resolved()
    if old is not None:
        if old.get("name") != spec.name:
            raise ConfigError(f"{str(sweep.path)!r} holds sweep {old.get('name')!r}, not {spec.name!r}; "
                              "choose another --out")
        folders = {r["folder"] for r in resolved["runs"]}
        resolved["runs"] += [r for r in old["runs"] if r.get("folder") not in folders]
    sweep.write_resolved(resolved)
    return sweep.path / SWEEP_FILE


def read_resolved_runs(sweep: SweepFolder) -> list[RunConfig]:
    """The run configs listed in ``sweep.json`` (empty when absent; :class:`StoreError` when damaged)."""
    resolved = sweep.read_resolved()
    if resolved is None:
        return []
    try:
        return [RunConfig.from_dict(entry["config"]) for entry in resolved["runs"]]
    except ConfigError as exc:
        raise StoreError(f"cannot read {str(sweep.path / SWEEP_FILE)!r}: a run config is invalid ({exc})") from None
