"""Cluster profiles: the resources of one job, read from ``slurm/profiles/<name>.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.config import ConfigError
from bench.core.errors import UserError

PROFILES_DIR = Path(__file__).resolve().parents[2] / "slurm" / "profiles"

@dataclass(frozen=True)
class Profile:
    """Resources of one job on a cluster, read from ``slurm/profiles/<name>.toml``.

    ``partition`` None uses the cluster's default partition. ``gpus_per_node`` 0 requests no
    GPU. ``array_parallelism`` caps the array's jobs running at once. ``max_timeouts`` is how
    many times a job hitting its time limit is requeued (preemptions always requeue).
    ``extra_sbatch`` adds ``#SBATCH --key=value`` lines; ``setup`` adds shell lines before the
    job starts (module loads, activating an environment).
    """

    name: str
    partition: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float = 4.0
    timeout_min: int = 60
    array_parallelism: int = 16
    max_timeouts: int = 3
    extra_sbatch: dict[str, Any] = field(default_factory=dict)
    setup: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> Profile:
        """Validate a profile table; unknown keys raise :class:`ConfigError` naming them."""
        valid = [f for f in cls.__dataclass_fields__ if f != "name"]
        for key in data:
            if key not in valid:
                raise ConfigError(f"unknown key {key!r} in profile {name!r}; valid keys: {', '.join(valid)}")
        ints = {"gpus_per_node": 0, "cpus_per_task": 1, "timeout_min": 1, "array_parallelism": 1, "max_timeouts": 0}
        for key, minimum in ints.items():
            value = data.get(key, getattr(cls, key))
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"profile {name!r}: {key} must be a whole number >= {minimum}, got {value!r}")
        mem = data.get("mem_gb", cls.mem_gb)
        if isinstance(mem, bool) or not isinstance(mem, (int, float)) or mem <= 0:
            raise ConfigError(f"profile {name!r}: mem_gb must be a number > 0, got {mem!r}")
        if not isinstance(data.get("extra_sbatch", {}), dict):
            raise ConfigError(f"profile {name!r}: extra_sbatch must be a table of sbatch options")
        setup = data.get("setup", [])
        if not isinstance(setup, list) or not all(isinstance(line, str) for line in setup):
            raise ConfigError(f"profile {name!r}: setup must be a list of shell lines")
        partition = data.get("partition")
        if partition is not None and (not isinstance(partition, str) or not partition):
            raise ConfigError(f"profile {name!r}: partition must be a non-empty name")
        return cls(name=name, **{**data, "setup": tuple(setup), "mem_gb": float(mem)})




def load_profile(name: str) -> Profile:
    """A profile by name (``slurm/profiles/<name>.toml``) or by path to a ``.toml`` file."""
    path = Path(name) if name.endswith(".toml") else PROFILES_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
        raise UserError(f"unknown profile {name!r}; valid profiles: {', '.join(known)} (or a path to a .toml file)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"profile {str(path)!r} is not valid UTF-8 TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"profile {str(path)!r} cannot be read: {exc.strerror}") from None
    return Profile.from_dict(path.stem, data)
