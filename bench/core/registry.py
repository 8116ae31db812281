"""Registries of tasks and optimizers, with named presets, loaded lazily.

A plug-in is a class decorated with :func:`register_task` or :func:`register_optimizer` in a
module of :mod:`bench.tasks` / :mod:`bench.optimizers` (the repository's ``tasks/`` and
``optimizers/`` folders), or in a module of another package named by an entry point of the
``bench.tasks`` / ``bench.optimizers`` group (``name = "package.module"``).

The registry finds the decorators by *reading* those modules (with :mod:`ast`), not by importing
them, and maps every name to ``module:Class``. A module is imported only when one of its names is
used, so a module with a syntax error, a missing dependency or a duplicate name breaks only its
own names: every other command keeps working, and ``bench list`` shows what is broken and why.
Decorator arguments that are not plain literals (or module-level constants bound to literals)
make the registry import that module to learn its names.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

from bench.core.errors import UserError
from bench.core.hashing import stable_hash

KINDS = ("task", "optimizer")
_PACKAGES = {"task": "bench.tasks", "optimizer": "bench.optimizers"}
_DECORATORS = {"register_task": "task", "register_optimizer": "optimizer"}


class UnknownName(UserError, KeyError):
    """A task, optimizer, preset or parameter name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginError(UserError):
    """A registered plug-in could not be loaded (its module fails to import, or a name is registered twice)."""


@dataclass(frozen=True)
class PluginSpec:
    """A registered task or optimizer configuration: where its class lives and its preset parameters.

    ``target`` is ``"module:Class"``; the class is imported on first use (:meth:`load`).
    ``package`` is the distribution the plug-in is built on (its version goes into ``run.json``).
    """

    kind: str
    name: str  # full name, e.g. "lgbm-milp/paper"
    target: str
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    package: str | None = None

    @property
    def module(self) -> str:
        """The module that defines the plug-in."""
        return self.target.partition(":")[0]

    def load(self) -> type:
        """The plug-in's class (importing its module on first use)."""
        module_name, _, qualname = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure is the plug-in's, reported by name
            raise PluginError(f"{self.kind} {self.name!r} cannot be loaded: importing {module_name} raised "
                              f"{type(exc).__name__}: {exc}") from exc
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        if not isinstance(obj, type):
            raise PluginError(f"{self.kind} {self.name!r}: {self.target} is not a class")
        return obj

    def resolved_params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Preset parameters updated with ``overrides``, checked against the constructor."""
        params = {**self.params, **(overrides or {})}
        check_params(self.load(), params, what=f"{self.kind} {self.name!r}")
        return params

    def preset_hash(self, overrides: dict[str, Any] | None = None) -> str:
        """Stable hash of the class and resolved parameters."""
        return stable_hash({"class": self.target.replace(":", "."), "params": self.resolved_params(overrides)})

    def build(self, *args: Any, overrides: dict[str, Any] | None = None) -> Any:
        """Instantiate the plug-in: ``cls(*args, **params)`` (optimizers take ``space, seed``)."""
        return self.load()(*args, **self.resolved_params(overrides))


@dataclass
class _Index:
    """Every known registration, by kind and full name, plus the modules that could not be read."""

    specs: dict[str, dict[str, list[PluginSpec]]] = field(default_factory=lambda: {k: {} for k in KINDS})
    broken: dict[str, str] = field(default_factory=dict)  # module -> reason
    scanned: bool = False

    def add(self, spec: PluginSpec) -> None:
        entries = self.specs[spec.kind].setdefault(spec.name, [])
        entries[:] = [s for s in entries if s.target != spec.target] + [spec]


_INDEX = _Index()
_RUNTIME: dict[str, dict[str, PluginSpec]] = {k: {} for k in KINDS}

C = TypeVar("C", bound=type)


def _first_doc_line(doc: str | None) -> str:
    doc = inspect.cleandoc(doc or "").strip()
    return doc.splitlines()[0] if doc else ""


def _expand(kind: str, name: str, target: str, defaults: dict[str, Any], presets: dict[str, dict[str, Any]] | None,
            description: str, package: str | None) -> list[PluginSpec]:
    specs = [PluginSpec(kind, name, target, dict(defaults), description, package)]
    for preset, params in (presets or {}).items():
        specs.append(PluginSpec(kind, f"{name}/{preset}", target, {**defaults, **params}, description, package))
    return specs


def _decorator(kind: str, name: str, presets: dict[str, dict[str, Any]] | None, package: str | None,
               defaults: dict[str, Any]) -> Callable[[C], C]:
    def decorate(cls: C) -> C:
        if kind == "task" and "name" not in vars(cls):
            cls.name = name  # type: ignore[attr-defined] - the task's registered base name, a class attribute
        target = f"{cls.__module__}:{cls.__qualname__}"
        for spec in _expand(kind, name, target, defaults, presets, _first_doc_line(cls.__doc__), package):
            old = _RUNTIME[kind].get(spec.name)
            if old is not None and old.target != spec.target:
                raise PluginError(f"{kind} {spec.name!r} is registered twice ({old.target} and {spec.target})")
            _RUNTIME[kind][spec.name] = spec
        return cls

    return decorate


def register_optimizer(name: str, presets: dict[str, dict[str, Any]] | None = None, package: str | None = None,
                       **default_params: Any) -> Callable[[C], C]:
    """Class decorator: register an optimizer under ``name`` and ``name/<preset>`` for each preset.

    ``default_params`` are the parameters of the bare ``name``; each preset's parameters are
    applied on top of them. ``package`` names the distribution the optimizer is built on
    (e.g. ``"optuna"``): its version is recorded in every run's ``run.json``.
    """
    return _decorator("optimizer", name, presets, package, default_params)


@contextmanager
def temporarily_registered(kind: str, name: str, cls: type, **default_params: Any) -> Iterator[PluginSpec]:
    """Register ``cls`` as ``kind`` ``name`` for the duration of a ``with`` block (tests, notebooks)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    previous = _RUNTIME[kind].get(name)
    spec = PluginSpec(kind, name, f"{cls.__module__}:{cls.__qualname__}", dict(default_params),
                      _first_doc_line(cls.__doc__))
    _RUNTIME[kind][name] = spec
    named = kind == "task" and "name" not in vars(cls)
    if named:
        cls.name = name.split("/")[0]  # type: ignore[attr-defined]
    try:
        yield spec
    finally:
        if named:
            del cls.name  # type: ignore[attr-defined]
        if previous is None:
            _RUNTIME[kind].pop(name, None)
        else:
            _RUNTIME[kind][name] = previous


def register_task(name: str, presets: dict[str, dict[str, Any]] | None = None, package: str | None = None,
                  **default_params: Any) -> Callable[[C], C]:
    """Class decorator: register a task under ``name`` (and ``name/<preset>``); sets ``cls.name``."""
    return _decorator("task", name, presets, package, default_params)


# --- static discovery -------------------------------------------------------------------------


class _NotStatic(Exception):
    """A decorator argument is not a literal: the module must be imported to know its names."""


def _static(node: ast.AST, env: dict[str, Any]) -> Any:
    """Value of a literal expression; names may refer to module-level literal constants."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        if node.id in ("None", "True", "False"):
            return {"None": None, "True": True, "False": False}[node.id]
        raise _NotStatic(node.id)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        values = [_static(e, env) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](values)
    if isinstance(node, ast.Dict):
        out: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values):
            if key is None:  # {**other}
                out.update(_static(value, env))
            else:
                out[_static(key, env)] = _static(value, env)
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _static(node.operand, env)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
        left, right = _static(node.left, env), _static(node.right, env)
        ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
               ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}
        return ops[type(node.op)](left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _static(kw.value, env) for kw in node.keywords if kw.arg}
    raise _NotStatic(ast.dump(node)[:60])


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    env: dict[str, Any] = {}
    for stmt in tree.body:
        targets: list[ast.expr] = []
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    env[target.id] = _static(value, env)
                except _NotStatic:
                    env.pop(target.id, None)
    return env


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _scan_source(module_name: str, source: str) -> tuple[list[PluginSpec], bool]:
    """Registrations found in a module's source, and whether some decorator needs an import to read."""
    tree = ast.parse(source)
    env = _module_constants(tree)
    specs: list[PluginSpec] = []
    decorators = {id(d) for node in ast.walk(tree) if isinstance(node, ast.ClassDef) for d in node.decorator_list}
    # register_*(...) used other than as a class decorator (e.g. in a loop): only the import can tell
    dynamic = any(isinstance(node, ast.Call) and id(node) not in decorators and _called_name(node) in _DECORATORS
                  for node in ast.walk(tree))
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for deco in node.decorator_list:
            func_name = _called_name(deco) if isinstance(deco, ast.Call) else ""
            if func_name not in _DECORATORS or not isinstance(deco, ast.Call):
                continue
            try:
                args = [_static(a, env) for a in deco.args]
                kwargs = {kw.arg: _static(kw.value, env) for kw in deco.keywords if kw.arg}
                if any(kw.arg is None for kw in deco.keywords) or len(args) != 1:
                    raise _NotStatic("**kwargs")
            except _NotStatic:
                dynamic = True
                continue
            presets, package = kwargs.pop("presets", None), kwargs.pop("package", None)
            specs += _expand(_DECORATORS[func_name], args[0], f"{module_name}:{node.name}", kwargs, presets,
                             _first_doc_line(ast.get_docstring(node)), package)
    return specs, dynamic


def _plugin_modules() -> Iterable[tuple[str, Path | None]]:
    """(module name, source file) of every built-in plug-in module and entry-point module."""
    for kind in KINDS:
        package = importlib.import_module(_PACKAGES[kind])
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                yield f"{_PACKAGES[kind]}.{info.name}", Path(package.__path__[0]) / f"{info.name}.py"
    for group in _PACKAGES.values():
        for ep in entry_points(group=group):
            yield ep.value.partition(":")[0], None


def _scan() -> None:
    if _INDEX.scanned:
        return
    _INDEX.scanned = True
    for module_name, path in _plugin_modules():
        try:
            if path is None or not path.is_file():
                spec = importlib.util.find_spec(module_name)
                path = Path(spec.origin) if spec is not None and spec.origin else None
            if path is None:
                raise FileNotFoundError(f"module {module_name} not found")
            found, dynamic = _scan_source(module_name, path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError, ImportError, ValueError) as exc:
            _INDEX.broken[module_name] = f"{type(exc).__name__}: {exc}"
            continue
        for spec in found:
            _INDEX.add(spec)
        if dynamic:  # decorator arguments only the import can tell
            try:
                importlib.import_module(module_name)
            except Exception as exc:  # noqa: BLE001 - reported, never fatal for other plug-ins
                _INDEX.broken[module_name] = f"{type(exc).__name__}: {exc}"


def _candidates(kind: str, name: str) -> list[PluginSpec]:
    _scan()
    runtime = _RUNTIME[kind].get(name)
    static = [s for s in _INDEX.specs[kind].get(name, []) if runtime is None or s.target != runtime.target]
    return ([runtime] if runtime is not None else []) + static


def _lookup(kind: str, name: str) -> PluginSpec:
    found = _candidates(kind, name)
    if not found:
        valid = ", ".join(sorted(_names(kind)))
        hint = ""
        broken = [m for m in _INDEX.broken if m.startswith(_PACKAGES[kind])]
        if broken:
            hint = f" (modules that could not be read: {', '.join(broken)}; see `bench list`)"
        raise UnknownName(f"unknown {kind} {name!r}; valid {kind}s: {valid}{hint}")
    if len({s.target for s in found}) > 1:
        raise PluginError(f"{kind} {name!r} is registered twice: {' and '.join(s.target for s in found)}; "
                          "rename one of them")
    spec = found[0]
    if spec.name not in _RUNTIME[kind]:
        spec.load()  # the import runs the decorator, whose registration is authoritative
        spec = _RUNTIME[kind].get(name, spec)
    return spec


def _names(kind: str) -> set[str]:
    _scan()
    return set(_INDEX.specs[kind]) | set(_RUNTIME[kind])


def optimizer_spec(name: str) -> PluginSpec:
    """The registered optimizer (or preset) ``name``; raises :class:`UnknownName` listing valid ones."""
    return _lookup("optimizer", name)


def task_spec(name: str) -> PluginSpec:
    """The registered task ``name``; raises :class:`UnknownName` listing valid ones."""
    return _lookup("task", name)


def _listing(kind: str) -> dict[str, PluginSpec]:
    out = {}
    for name in sorted(_names(kind)):
        found = _candidates(kind, name)
        out[name] = found[0]
    return out


def optimizers() -> dict[str, PluginSpec]:
    """All registered optimizers and presets, by full name (nothing is imported)."""
    return _listing("optimizer")


def tasks() -> dict[str, PluginSpec]:
    """All registered tasks, by name (nothing is imported)."""
    return _listing("task")


def broken_modules() -> dict[str, str]:
    """Plug-in modules that could not be read or imported, with the reason."""
    _scan()
    return dict(_INDEX.broken)


def duplicate_names() -> dict[str, list[str]]:
    """``kind name`` -> targets, for names that two classes register."""
    _scan()
    out = {}
    for kind in KINDS:
        for name in _names(kind):
            targets = sorted({s.target for s in _candidates(kind, name)})
            if len(targets) > 1:
                out[f"{kind} {name}"] = targets
    return out


def check_params(cls: type, params: dict[str, Any], what: str) -> None:
    """Raise :class:`UnknownName` if ``params`` holds a keyword the constructor does not take."""
    valid: list[str] = []
    defaults: dict[str, Any] = {}
    for klass in cls.__mro__:  # a constructor taking **options passes them up: collect its parents' names
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        named = [p for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                 and p.name not in ("self", "space", "seed") and p.name not in valid]
        valid += [p.name for p in named]
        defaults.update({p.name: p.default for p in named})
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    else:
        return  # **kwargs all the way up: nothing to check against
    for key, value in params.items():
        if key not in valid:
            raise UnknownName(f"{what} has no parameter {key!r}; valid parameters: {', '.join(valid) or '(none)'}")
        _check_type(what, key, value, defaults.get(key, inspect.Parameter.empty))


class ParameterTypeError(UserError, TypeError):
    """A parameter value of the wrong kind (e.g. a word where the constructor's default is a number)."""


def _check_type(what: str, key: str, value: Any, default: Any) -> None:
    """Compare ``value`` with the kind of the constructor's default (the parameter's documented type)."""
    if default is inspect.Parameter.empty or default is None or value is None:
        return
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        if ok and isinstance(default, int) and isinstance(value, float) and not value.is_integer():
            ok, kind = False, "a whole number"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "a name"
    else:
        return
    if not ok:
        raise ParameterTypeError(f"{what}: parameter {key!r} expects {kind} (default {default!r}), got {value!r}")
