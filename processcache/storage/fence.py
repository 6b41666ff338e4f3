"""Fencing: a locked run's writes go through only while it still holds its lock.

A heartbeat can miss its renewals (a stalled network, a paused VM, a long C
call holding the GIL) and another run can then take the lock over. The run
that lost it does not know until it looks, so every write it makes looks, in
the same statement or transaction: a single insert is an
``INSERT ... SELECT ... FROM process_job_locks WHERE name = ? AND run_id = ?``
(no row, no insert), and a transaction first reads its lock rows with a
shared row lock (`Dialect.for_share`), so the lock cannot change hands
before it commits. The token is the holder's id in the lock row: a run's id,
or a memoised computation's random owner. A write the fence refuses raises
`LeaseLostError`, and nothing of it is stored.
"""

from typing import TYPE_CHECKING, NamedTuple

from ..errors import LeaseLostError

if TYPE_CHECKING:
    from .backend import Backend


class Fence(NamedTuple):
    """The locks a write needs held, as ``(lock name, holder token)`` pairs; empty for an unlocked run."""

    holds: tuple[tuple[str, int], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.holds)

    def plus(self, name: str, token: int) -> "Fence":
        """This fence and one more lock (a memoised computation inside a locked run)."""
        return Fence(self.holds + ((name, token),))

    def lost(self, name: str | None = None) -> LeaseLostError:
        name = name or self.holds[0][0]
        return LeaseLostError(name)

    def lost_lock(self, backend: "Backend") -> str | None:
        """Inside a transaction: the first lock no longer held, else None, with the held rows share-locked."""
        names = [name for name, _ in self.holds]
        marks = ", ".join(f"$n{i}" for i in range(len(names)))
        found = dict(backend.select(f"SELECT name, run_id FROM process_job_locks WHERE name IN ({marks})"
                                    f"{backend.dialect.for_share}", {f"n{i}": name for i, name in enumerate(names)}))
        for name, token in self.holds:
            if found.get(name) != token:
                return name
        return None

    def check(self, backend: "Backend") -> None:
        """Inside a transaction: raise `LeaseLostError` unless every lock is still held."""
        if self.holds:
            name = self.lost_lock(backend)
            if name is not None:
                raise self.lost(name)


NO_FENCE = Fence()
