"""Registries of tasks and optimizers, with named presets.

Adding an optimizer is one module in ``optimizers/`` with a :func:`register_optimizer`
decorator: every module of the ``optimizers`` and ``tasks`` packages is imported on first use.
Third-party packages can register too, through the ``bench.optimizers`` / ``bench.tasks``
entry-point groups (the entry point names a module to import).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import pkgutil
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, TypeVar

from bench.core.errors import UserError
from bench.core.optimizer import Optimizer
from bench.core.space import CodeGrid
from bench.core.task import Task


class UnknownName(UserError, KeyError):
    """A task, optimizer, preset or parameter name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class OptimizerSpec:
    """A registered optimizer configuration: class plus preset parameters."""

    name: str  # full name, e.g. "lgbm-milp/paper"
    cls: type[Optimizer]
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def resolved_params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Preset parameters updated with ``overrides``, checked against the constructor."""
        params = {**self.params, **(overrides or {})}
        check_params(self.cls, params, what=f"optimizer {self.name!r}")
        return params

    def preset_hash(self, overrides: dict[str, Any] | None = None) -> str:
        """Stable hash of the class and resolved parameters."""
        return stable_hash({"class": f"{self.cls.__module__}.{self.cls.__qualname__}",
                            "params": self.resolved_params(overrides)})

    def build(self, space: CodeGrid, seed: int, overrides: dict[str, Any] | None = None) -> Optimizer:
        """Instantiate the optimizer."""
        return self.cls(space, seed, **self.resolved_params(overrides))


@dataclass(frozen=True)
class TaskSpec:
    name: str
    cls: type[Task]
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def resolved_params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        params = {**self.params, **(overrides or {})}
        check_params(self.cls, params, what=f"task {self.name!r}")
        return params

    def build(self, overrides: dict[str, Any] | None = None) -> Task:
        task = self.cls(**self.resolved_params(overrides))
        task.name = self.name
        return task


_OPTIMIZERS: dict[str, OptimizerSpec] = {}
_TASKS: dict[str, TaskSpec] = {}
_loaded = False

O = TypeVar("O", bound=type[Optimizer])
T = TypeVar("T", bound=type[Task])


def _first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def register_optimizer(name: str, presets: dict[str, dict[str, Any]] | None = None,
                       **default_params: Any) -> Callable[[O], O]:
    """Class decorator: register an optimizer under ``name`` and ``name/<preset>`` for each preset.

    ``default_params`` are the parameters of the bare ``name``; each preset's parameters are
    applied on top of them.
    """

    def decorate(cls: O) -> O:
        _add(_OPTIMIZERS, OptimizerSpec(name, cls, dict(default_params), _first_doc_line(cls)))
        for preset, params in (presets or {}).items():
            _add(_OPTIMIZERS, OptimizerSpec(f"{name}/{preset}", cls, {**default_params, **params},
                                            _first_doc_line(cls)))
        return cls

    return decorate


def register_task(name: str, presets: dict[str, dict[str, Any]] | None = None,
                  **default_params: Any) -> Callable[[T], T]:
    """Class decorator: register a task under ``name`` (and ``name/<preset>``)."""

    def decorate(cls: T) -> T:
        _add(_TASKS, TaskSpec(name, cls, dict(default_params), _first_doc_line(cls)))
        for preset, params in (presets or {}).items():
            _add(_TASKS, TaskSpec(f"{name}/{preset}", cls, {**default_params, **params}, _first_doc_line(cls)))
        return cls

    return decorate


def _add(table: dict[str, Any], spec: Any) -> None:
    old = table.get(spec.name)
    if old is not None and old.cls.__qualname__ != spec.cls.__qualname__:
        raise ValueError(f"{spec.name!r} is registered twice ({old.cls.__qualname__} and {spec.cls.__qualname__})")
    table[spec.name] = spec


def load_plugins() -> None:
    """Import every module of the ``tasks`` and ``optimizers`` packages, and entry points."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package_name in ("bench.tasks", "bench.optimizers"):
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package_name}.{info.name}")
    for group in ("bench.tasks", "bench.optimizers"):
        for ep in entry_points(group=group):
            ep.load()


def _lookup(table: dict[str, Any], name: str, kind: str) -> Any:
    load_plugins()
    if name not in table:
        raise UnknownName(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(table))}")
    return table[name]


def optimizer_spec(name: str) -> OptimizerSpec:
    """The registered optimizer (or preset) ``name``; raises :class:`UnknownName` listing valid ones."""
    return _lookup(_OPTIMIZERS, name, "optimizer")


def task_spec(name: str) -> TaskSpec:
    """The registered task ``name``; raises :class:`UnknownName` listing valid ones."""
    return _lookup(_TASKS, name, "task")


def optimizers() -> dict[str, OptimizerSpec]:
    """All registered optimizers and presets, by full name."""
    load_plugins()
    return dict(sorted(_OPTIMIZERS.items()))


def tasks() -> dict[str, TaskSpec]:
    """All registered tasks, by name."""
    load_plugins()
    return dict(sorted(_TASKS.items()))


def check_params(cls: type, params: dict[str, Any], what: str) -> None:
    """Raise :class:`UnknownName` if ``params`` holds a keyword the constructor does not take."""
    valid: list[str] = []
    for klass in cls.__mro__:  # a constructor taking **options passes them up: collect its parents' names
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        valid += [p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                  and p.name not in ("self", "space", "seed") and p.name not in valid]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    else:
        return  # **kwargs all the way up: nothing to check against
    for key in params:
        if key not in valid:
            raise UnknownName(f"{what} has no parameter {key!r}; valid parameters: {', '.join(valid) or '(none)'}")


def stable_hash(obj: Any) -> str:
    """Short SHA-256 of a JSON-serialisable object with sorted keys."""
    text = json.dumps(obj, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
