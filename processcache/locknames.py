"""Lock names: no two jobs share a lock, and every lock fits its row.

A lock is named by text a person reads in ``processcache locks`` and types
in ``processcache locks break``: ``GROUP/JOB`` for a job-wide lock,
``GROUP/JOB@MACHINE`` for a per-machine one (`lock_name`). Declared group
and job names hold neither ``/`` nor ``@`` (`names.normalize_name`), so the
text splits one way only, whatever the machine name holds.

The lock table keys a lock by a VARCHAR(255), which MariaDB compares
ignoring trailing spaces. A name that is longer, or ends with a space, is
stored as its digest form instead (`lock_key`): its start, with ``:`` for
each ``/``, then ``~`` and the SHA-256 of the whole name, 255 characters at
most. Every lock name holds a ``/`` and no digest form does, so a name
stored as it is never equals another name's digest form, and two digest
forms differ when their names do. `lock_key` of a stored key is that key:
the lock commands take a lock's name or its key as listed.
"""

from .names import MAX_LENGTH

_DIGEST_LENGTH = 64  # SHA-256 in hex


def lock_name(group: str, job: str, machine: str | None = None) -> str:
    """``group/job``, or ``group/job@machine`` for a per-machine lock."""
    return f"{group}/{job}" if machine is None else f"{group}/{job}@{machine}"


def lock_key(name: str) -> str:
    """The lock table's key for the lock *name* (see the module docstring)."""
    if len(name) <= MAX_LENGTH and not name.endswith(" "):
        return name
    import hashlib  # here, not at import: `processcache run` starts faster without it

    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    start = name[:MAX_LENGTH - _DIGEST_LENGTH - 1].replace("/", ":")
    return f"{start}~{digest}"
