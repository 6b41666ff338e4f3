"""What the run's own machinery keeps of a run beside its context: its heartbeat, output, exit code, attempts.

`CacheContext` is the user's API and nothing else; these are read and
written only by ``run/`` (the session, the attempts, ``exec``'s command),
so they live here, found by the context (`state_of`), and ``help(ctx)`` shows
none of them. The lock a run's writes need held (``ctx.fence``) stays on
the context: every cache write passes it to the store.
"""

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..cache.context import CacheContext
    from .heartbeat import Heartbeat
    from .output import Captured


@dataclass
class RunState:
    """One run's machinery."""

    #: The run's heartbeat: its ``lease_lost`` turns True once another run took the lock over.
    heartbeat: "Heartbeat | None" = None
    #: The end of what the run printed (`output.Captured`), stored with it; None with ``output_tail=0``.
    output: "Captured | None" = None
    #: The exit code of the command a ``processcache exec`` run started (None for a Python job).
    exit_code: int | None = None
    #: How many attempts a job with ``retries`` made so far (None without retries).
    attempts: int | None = None


_STATES: "weakref.WeakKeyDictionary[CacheContext, RunState]" = weakref.WeakKeyDictionary()


def state_of(ctx: "CacheContext") -> RunState:
    """The machinery of *ctx*'s run: a new, empty one the first time (a context no run of ours made)."""
    state = _STATES.get(ctx)
    if state is None:
        state = _STATES[ctx] = RunState()
    return state
