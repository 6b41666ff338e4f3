"""Group, job, machine and key names: normalised and checked before storage.

Group and job names are normalised as the original `process-cache` did, so a
database shared with it names things the same way: trim, lower-case, and turn
every run of white space, ``*``, ``,``, ``.`` and ``-`` into one ``-``
(`normalize`). White space means what JavaScript's ``\\s`` and ``trim()`` mean
(Unicode white space and U+FEFF); like the original, the control characters
U+001C–U+001F and U+0085, which Python alone calls white space, are kept.

A job is then declared (`normalize_name`: ``@job``, ``JobSpec``,
``cache_session``, ``memoize``, a context) only under names every command
can address and no other job's lock can equal, which the original did not
require: a group or job name holding ``/`` or ``@``, or no letter or digit,
is refused with the name to write instead. ``/`` separates the group from
the job in ``GROUP/JOB`` (the CLI's address of a job) and in lock names,
``@`` the job from the machine (``GROUP/JOB@MACHINE``, see `locknames`); a
name of punctuation alone normalises to ``-``, which a command line reads as
an option.

Databases written before these checks, or by the original, may hold jobs
whose names the checks refuse. Nothing of them is changed: their runs, logs
and entries stay, ``processcache jobs`` lists them and ``processcache runs``
shows their runs, but no new run, entry or log can be written under them,
since declaring them is refused. Declare the job under the name the message
gives; its history stays under the old name. Their lock rows stay as well:
only a machine still on an older release can take one again (and so block
the declarable job whose lock has that name), so upgrade every machine.
"""

import re

from .errors import InvalidKeyError, InvalidNameError

# -- locknames -------------------------------------------------------------------------------------------

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


#: JavaScript's ``\s`` (ECMAScript WhiteSpace and LineTerminator).
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_SEPARATORS = re.compile("[" + re.escape(JS_WHITESPACE) + r"*,.\-]+")
#: The characters a declared group or job name may not hold, with what each separates.
_RESERVED = {"/": "the group from the job in GROUP/JOB", "@": "the job from the machine in GROUP/JOB@MACHINE"}

#: Longest group, job, machine name or key, in characters (a VARCHAR(255) column).
MAX_LENGTH = 255


def normalize(name: str) -> str:
    """The original's normalisation alone, refusing nothing but a non-str.

    >>> normalize("  My Job.v2 ** daily ")
    'my-job-v2-daily'
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"a group or job name must be a str, not {type(name).__name__}")
    return _SEPARATORS.sub("-", name.strip(JS_WHITESPACE).lower())


def normalize_name(name: str, what: str = "name") -> str:
    """Return the stored form of a group or job name being declared (*what* says which, for messages).

    >>> normalize_name("  My Job.v2 ** daily ")
    'my-job-v2-daily'

    Raises InvalidNameError when nothing is left, when the name holds no
    letter or digit, ``/`` or ``@`` (see the module docstring), or cannot be stored.
    """
    normalized = normalize(name)
    if not normalized:
        raise InvalidNameError(f"the {what} {name!r} is empty once normalised: use letters or digits")
    if not any(char.isalnum() for char in normalized):
        raise InvalidNameError(f"the {what} {name!r} normalises to {normalized!r}, which holds no letter or"
                               " digit: use a name with letters or digits, such as 'nightly-sync'")
    for char, separates in _RESERVED.items():
        if char in normalized:
            instead = normalize("".join("-" if c in _RESERVED else c for c in normalized))
            raise InvalidNameError(f"the {what} {name!r} holds {char!r}, which separates {separates}:"
                                   f" write {instead!r} instead")
    return check_text(normalized, what, InvalidNameError)


def split_job_name(text: str) -> tuple[str, str]:
    """``GROUP/JOB``, the address commands take for a job, as its (group, job) parts as written.

    >>> split_job_name("example/hello-world")
    ('example', 'hello-world')

    The parts are not normalised: the caller does that, with `normalize` to
    find a job an older release stored, or `normalize_name` to declare one.
    Raises InvalidNameError, in one line naming the form, when *text* has no
    ``/`` or nothing on one side of it.
    """
    group, slash, job = text.partition("/")
    if not slash or not group or not job:
        raise InvalidNameError(f"{text!r} is not GROUP/JOB: write it as example/hello-world")
    return group, job


def check_machine(machine: str) -> str:
    """Machine names are kept as given (host names), only checked."""
    if not isinstance(machine, str) or not machine:
        raise InvalidNameError("a machine name must be a non-empty str")
    return check_text(machine, "machine name", InvalidNameError)


def check_key(key: str) -> str:
    """Keys are kept exactly as given: any text of 1 to 255 characters."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"a cache key must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidKeyError("a cache key must not be empty")
    return check_text(key, "cache key", InvalidKeyError)


def check_keys(keys: list[str]) -> list[str]:
    """`check_key` of each distinct key: a batch repeats a few keys many times."""
    for key in set(keys) if all(isinstance(key, str) for key in keys) else keys:
        check_key(key)
    return keys


def check_text(text: str, what: str, error: type[Exception]) -> str:
    """Refuse what one of the three databases cannot hold exactly.

    PostgreSQL text cannot hold NUL, and no database holds a lone surrogate,
    so both are refused everywhere: a job behaves the same on every backend.
    """
    if len(text) > MAX_LENGTH:
        raise error(f"the {what} is {len(text)} characters long; the limit is {MAX_LENGTH}")
    if "\x00" in text:
        raise error(f"the {what} {text!r} holds a NUL character, which databases cannot store")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise error(
            f"the {what} {text!r} holds a lone surrogate, which is not valid Unicode text"
        ) from None
    return text
