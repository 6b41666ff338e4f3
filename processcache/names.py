"""Group, job, machine and key names: normalised and checked before storage.

Group and job names are normalised as the original `process-cache` did, so a
database shared with it names things the same way: trim, lower-case, and turn
every run of white space, ``*``, ``,``, ``.`` and ``-`` into one ``-``.
White space means what JavaScript's ``\\s`` and ``trim()`` mean (Unicode
white space and U+FEFF); like the original, the control characters
U+001C–U+001F and U+0085, which Python alone calls white space, are kept.
"""

import re

from .errors import InvalidKeyError, InvalidNameError

#: JavaScript's ``\s`` (ECMAScript WhiteSpace and LineTerminator).
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_SEPARATORS = re.compile("[" + re.escape(JS_WHITESPACE) + r"*,.\-]+")

#: Longest group, job, machine name or key, in characters (a VARCHAR(255) column).
MAX_LENGTH = 255


def normalize_name(name: str) -> str:
    """Return the stored form of a group or job name.

    >>> normalize_name("  My Job.v2 ** daily ")
    'my-job-v2-daily'

    Raises InvalidNameError when nothing is left, or the name cannot be stored.
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"a group or job name must be a str, not {type(name).__name__}")
    normalized = _SEPARATORS.sub("-", name.strip(JS_WHITESPACE).lower())
    if not normalized:
        raise InvalidNameError(
            f"the name {name!r} is empty once normalised: use letters or digits"
        )
    return check_text(normalized, "name", InvalidNameError)


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
