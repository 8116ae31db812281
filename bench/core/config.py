"""Run configuration: what one seeded run of (task, optimizer) does, validated up front."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bench.core.errors import UserError
from bench.core.hashing import stable_hash


class ConfigError(UserError, ValueError):
    """A run or sweep configuration is invalid; the message names the offending key."""


#: seeds are 32-bit: every library of the stack (LightGBM, HiGHS, torch, ...) takes them
MAX_SEED = 2**32 - 1


def _number(value: Any, key: str, *, integer: bool = False, minimum: float | None = None,
            maximum: float | None = None, allow_inf: bool = False) -> float | int:
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinity", "never"):
        value = math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if math.isinf(value):
        if not allow_inf:
            raise ConfigError(f"{key} must be finite, got {value!r}")
        return math.inf
    if math.isnan(value):
        raise ConfigError(f"{key} must be a number, got NaN")
    if integer:
        if float(value) != int(value):
            raise ConfigError(f"{key} must be a whole number, got {value!r}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key} must be <= {maximum}, got {value!r}")
    return value


def _from_mapping(cls: type, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'} must be a mapping, got {type(data).__name__}")
    valid = [f.name for f in fields(cls)]
    for key in data:
        if key not in valid:
            raise ConfigError(f"unknown key {prefix}{key!r}; valid keys: {', '.join(valid)}")
    return dict(data)


@dataclass(frozen=True)
class RetrainConfig:
    """Weighted retraining (Tripp et al. 2020) of the task's generative model.

    ``k``: rank-weight parameter, w_i = 1 / (k N + rank_i); ``inf`` means uniform weights.
    ``every``: queries between retrainings; ``inf`` means never.
    ``epochs``: fine-tuning epochs per retraining (fractions allowed).
    ``initial_epochs``: weighted fine-tuning epochs before the first query.
    """

    k: float = math.inf
    every: float = math.inf
    epochs: float = 0.1
    initial_epochs: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", _number(self.k, "retrain.k", minimum=0, allow_inf=True))
        object.__setattr__(self, "every", _number(self.every, "retrain.every", integer=True, minimum=1, allow_inf=True))
        object.__setattr__(self, "epochs", _number(self.epochs, "retrain.epochs", minimum=0))
        object.__setattr__(self, "initial_epochs", _number(self.initial_epochs, "retrain.initial_epochs", minimum=0))

    @property
    def enabled(self) -> bool:
        """Whether the generative model is ever fine-tuned during the run."""
        return not math.isinf(self.every) or self.initial_epochs > 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrainConfig:
        return cls(**_from_mapping(cls, data, "retrain."))


@dataclass(frozen=True)
class MetricsConfig:
    """Set-level image metrics (FID/KID) at fixed checkpoints.

    ``every``: queries between checkpoints (0 disables; the end of the run is always one when
    enabled). ``n_images``: images per subset ("top": best-scoring queries so far, "last": the
    most recent queries); identical across optimizers so the values are comparable.
    """

    every: int = 0
    n_images: int = 100

    def __post_init__(self) -> None:
        object.__setattr__(self, "every", _number(self.every, "metrics.every", integer=True, minimum=0))
        object.__setattr__(self, "n_images", _number(self.n_images, "metrics.n_images", integer=True, minimum=2))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricsConfig:
        return cls(**_from_mapping(cls, data, "metrics."))


TIMEOUT_ACTIONS = ("fail", "fallback")


@dataclass(frozen=True)
class ProposalLimits:
    """What a run tolerates from its optimizer.

    ``time_limit_s``: seconds one ``propose`` call may take (``inf``: no limit). This is the one
    wall-clock limit of a run, a safety net against an optimizer that never returns: when it
    fires the proposal is recorded as failed and the run is flagged load-dependent.
    ``on_timeout``: ``"fail"`` ends the run failed; ``"fallback"`` evaluates harness-drawn random
    points and goes on with the optimizer restored from its last state.
    ``max_fallback_share``: a run in which more than this share of the batches fell back to random
    points (because ``propose`` raised or returned invalid latents) ends failed with the
    optimizer's first error.
    """

    time_limit_s: float = 3600.0
    on_timeout: str = "fail"
    max_fallback_share: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_limit_s", _number(self.time_limit_s, "limits.time_limit_s", minimum=0,
                                                         allow_inf=True))
        if self.on_timeout not in TIMEOUT_ACTIONS:
            raise ConfigError(f"limits.on_timeout must be one of {', '.join(TIMEOUT_ACTIONS)}, got {self.on_timeout!r}")
        share = _number(self.max_fallback_share, "limits.max_fallback_share", minimum=0)
        if share > 1:
            raise ConfigError(f"limits.max_fallback_share must be between 0 and 1, got {share!r}")
        object.__setattr__(self, "max_fallback_share", float(share))

    @property
    def time_limit(self) -> float | None:
        """The limit in seconds, None when there is none."""
        return None if math.isinf(self.time_limit_s) else float(self.time_limit_s)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProposalLimits:
        return cls(**_from_mapping(cls, data, "limits."))


@dataclass(frozen=True)
class RunConfig:
    """One seeded run. ``optimizer`` is a registered name or preset (``name/preset``)."""

    task: str
    optimizer: str
    seed: int = 0
    budget: int = 100
    batch_size: int = 1
    n_initial: int | None = None
    task_params: dict[str, Any] = field(default_factory=dict)
    optimizer_params: dict[str, Any] = field(default_factory=dict)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    limits: ProposalLimits = field(default_factory=ProposalLimits)
    #: the method's name in records, folders and reports (default: ``optimizer``); lets one sweep
    #: hold the same optimizer with different run options, e.g. with and without retraining
    label: str | None = None

    def __post_init__(self) -> None:
        for key in ("task", "optimizer"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ConfigError(f"{key} must be a non-empty name, got {getattr(self, key)!r}")
        object.__setattr__(self, "seed", _number(self.seed, "seed", integer=True, minimum=0, maximum=MAX_SEED))
        object.__setattr__(self, "budget", _number(self.budget, "budget", integer=True, minimum=1))
        object.__setattr__(self, "batch_size", _number(self.batch_size, "batch_size", integer=True, minimum=1))
        if self.batch_size > self.budget:
            raise ConfigError(f"batch_size ({self.batch_size}) must not exceed budget ({self.budget})")
        if self.n_initial is not None:
            object.__setattr__(self, "n_initial", _number(self.n_initial, "n_initial", integer=True, minimum=1))
        if self.label is None:
            object.__setattr__(self, "label", self.optimizer)
        elif not isinstance(self.label, str) or not self.label:
            raise ConfigError(f"label must be a non-empty name, got {self.label!r}")
        for key in ("task_params", "optimizer_params"):
            if not isinstance(getattr(self, key), dict):
                raise ConfigError(f"{key} must be a mapping, got {getattr(self, key)!r}")
        if isinstance(self.retrain, dict):
            object.__setattr__(self, "retrain", RetrainConfig.from_dict(self.retrain))
        if isinstance(self.metrics, dict):
            object.__setattr__(self, "metrics", MetricsConfig.from_dict(self.metrics))
        if isinstance(self.limits, dict):
            object.__setattr__(self, "limits", ProposalLimits.from_dict(self.limits))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from a plain mapping (e.g. a sweep entry); unknown keys are named in the error."""
        kwargs = _from_mapping(cls, data, "")
        for key in ("task", "optimizer"):
            if key not in kwargs:
                raise ConfigError(f"missing required key {key!r}")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable mapping (``inf`` stays a float)."""
        return asdict(self)

    @property
    def run_id(self) -> str:
        """Stable id: hash of the resolved configuration."""
        return stable_hash(self.to_dict())

    @property
    def n_batches(self) -> int:
        """Optimizer batches in the run (the last one may be smaller)."""
        return math.ceil(self.budget / self.batch_size)

    def run_dir_parts(self) -> tuple[str, str, str]:
        """Folder names ``task=<t>``, ``opt=<o>``, ``seed=<s>`` (slashes in names become ``+``)."""
        return (f"task={self.task.replace('/', '+')}", f"opt={self.label.replace('/', '+')}", f"seed={self.seed}")


def _plain(value: Any) -> Any:
    """A config value as ``run.json`` stores it (non-finite floats as strings, tuples as lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def config_differences(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two config mappings, with (stored, current) values."""
    stored, current = _plain(stored), _plain(current)
    out: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(config_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            out[f"{prefix}{key}"] = (a, b)
    return out
