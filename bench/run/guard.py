"""Calling an optimizer's ``propose`` so that its failures stay its own.

``propose`` runs in a worker thread while the run's own thread waits for it:

* anything raised *inside* ``propose`` (an exception, ``sys.exit``) is the optimizer's doing and
  comes back as an :class:`OptimizerFailure` (``MemoryError`` is re-raised as it is); it is
  ``fatal`` for ``sys.exit`` and for a :class:`~bench.core.errors.UserError` (a configuration
  the optimizer refuses, e.g. a task without the capability it needs: retrying cannot help);
* anything raised in the waiting thread (``KeyboardInterrupt``, a cluster's time-out signal
  handler such as submitit's ``UncompletedJobError``) is control flow and propagates untouched:
  signals are only ever delivered to the main thread, never into the optimizer's code;
* a call that exceeds the time limit raises :class:`ProposalTimeout`; its thread is abandoned
  (a daemon: it dies with the process) and the caller must not use that optimizer object again.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from typing import Callable, TypeVar

from bench.core.errors import UserError

T = TypeVar("T")

#: seconds between checks of the worker while waiting (signals are handled between checks)
_POLL_S = 0.5


class OptimizerFailure(Exception):
    """``propose`` raised (or called ``sys.exit``); ``message`` and ``traceback`` say what."""

    def __init__(self, message: str, trace: str, fatal: bool) -> None:
        super().__init__(message)
        self.message = message
        self.trace = trace
        #: True for ``SystemExit`` (the optimizer tried to end the process) and ``UserError`` (it
        #: refuses the configuration): the run fails at once
        self.fatal = fatal


class ProposalTimeout(Exception):
    """``propose`` did not return within the time limit (a wall-clock limit: load-dependent)."""


@dataclass
class _Outcome:
    value: object = None
    error: BaseException | None = None
    trace: str = ""
    done: bool = False


def call_guarded(fn: Callable[[], T], time_limit_s: float | None, name: str = "propose") -> T:
    """``fn()`` in a worker thread; see the module doc for what is raised."""
    outcome = _Outcome()

    def work() -> None:
        try:
            outcome.value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which decides
            outcome.error, outcome.trace = exc, traceback.format_exc()
        finally:
            outcome.done = True

    worker = threading.Thread(target=work, name=f"bench-{name}", daemon=True)
    worker.start()
    waited = 0.0
    while worker.is_alive():
        step = _POLL_S if time_limit_s is None else min(_POLL_S, max(time_limit_s - waited, 0.0))
        worker.join(step)
        waited += step
        if worker.is_alive() and time_limit_s is not None and waited >= time_limit_s:
            raise ProposalTimeout(f"{name} did not return within {time_limit_s:g} s")
    error = outcome.error
    if error is None:
        return outcome.value  # type: ignore[return-value]
    if isinstance(error, MemoryError):
        raise error
    if isinstance(error, SystemExit):
        raise OptimizerFailure(f"{name} called sys.exit({error.code!r})", outcome.trace, fatal=True)
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, UserError):
        raise OptimizerFailure(first, outcome.trace, fatal=True)
    raise OptimizerFailure(f"{type(error).__name__}: {first}".rstrip(": "), outcome.trace,
                           fatal=not isinstance(error, Exception))
