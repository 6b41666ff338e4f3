"""Time stamps people read (aware UTC datetimes, stored as naive UTC text), and waiting."""

import random
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import overload


def utcnow() -> datetime:
    """The time stamps of entries, logs and runs: aware, in UTC."""
    return datetime.now(timezone.utc)


def db_time(moment: datetime) -> str:
    """Naive UTC text, which the three drivers all accept for a timestamp column."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ")


@overload
def py_time(value: None) -> None: ...
@overload
def py_time(value: str | datetime) -> datetime: ...
def py_time(value: str | datetime | None) -> datetime | None:
    """A stored time stamp back as an aware UTC datetime (SQLite returns its text); None for a NULL.

    The overloads tell the type checker that only a NULL comes back as None:
    a NOT NULL column's stamp is a `datetime` (``Entry.created_at``), a
    nullable one's an optional (``RunRecord.finished_at``).
    """
    if value is None:
        return None
    if isinstance(value, str):  # appending the offset parses 4x faster than replace(tzinfo=...)
        return datetime.fromisoformat(value + "+00:00")
    if value.tzinfo is not None:  # read as aware already (dialects.AWARE_TIME)
        return value
    return value.replace(tzinfo=timezone.utc)


def backoff(deadline: float) -> Iterator[None]:
    """Yield at once, then again after growing, jittered pauses until *deadline* (monotonic)."""
    delay = 0.05
    yield
    while time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())) * random.uniform(0.5, 1.0))
        delay = min(delay * 2, 2.0)
        yield
