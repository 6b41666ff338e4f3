"""How cache values are stored: JSON text, in one place.

Values are JSON values (str, int, float, bool, None, list, dict with str
keys) and come back equal. The text is ASCII-only JSON (``ensure_ascii``):
any Unicode, lone surrogates included, round-trips on every database and
column character set. NaN and infinities are refused: they are not JSON, and
an exported cache must stay readable by other tools. So is a dict key that
is not a str, at any depth: JSON would bring ``{1: "a"}`` back as
``{"1": "a"}``.
"""

import json
from _json import encode_basestring_ascii, make_encoder
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

from ..errors import InvalidValueError

# JSONEncoder.encode builds a new C encoder for every value; one built once
# encodes a small value 2.6x faster (create_cache_many encodes thousands).
# The C module _json is CPython's, which processcache needs anyway (Pony reads
# CPython bytecode). Without the circular-reference markers a cycle ends in
# RecursionError.
_c_encode = make_encoder(None, json.JSONEncoder().default, encode_basestring_ascii, None, ":", ",", False, False, False)
#: The C scanner that JSONDecoder sets on itself (typeshed does not declare the attribute).
_scan_once: Callable[[str, int], tuple[Any, int]] = vars(json.JSONDecoder())["scan_once"]
_first = itemgetter(0)


def decode_value(text: str) -> Any:
    """The value stored as *text* by `encode_value`.

    The stored text is compact JSON with nothing around it, so the C scanner
    reads it directly, skipping ``json.loads``' white-space checks (3x faster:
    this runs once per entry loaded).
    """
    return _scan_once(text, 0)[0]


def decode_values(texts: Sequence[str]) -> list[Any]:
    """`decode_value` of each text, looped in C: a load decodes 100,000 of them."""
    return list(map(_first, map(_scan_once, texts, repeat(0))))


def encode_value(value: Any) -> str:
    """Return the stored text of *value*, or raise InvalidValueError (a TypeError)."""
    try:
        text = "".join(_c_encode(value, 0))
    except TypeError as exc:  # a key of a type JSON has no conversion for (a tuple) lands here
        raise _key_error(value, "cache values") or InvalidValueError(
            f"cache values must be JSON values (str, int, float, bool, None, list, dict): {exc}"
        ) from None
    except ValueError as exc:
        raise InvalidValueError(
            f"cache values must be JSON values (NaN and infinity are not): {exc}"
        ) from None
    except RecursionError:
        raise InvalidValueError("the cache value is nested too deeply, or contains itself, to store as JSON") from None
    # Only a dict has keys: a value without one is not walked. The walk adds
    # 40 % to encoding a list of 10,000 small dicts (9.9 ms to 14 ms of CPU).
    if "{" in text:
        check_str_keys(value, "cache values")
    return text


def check_str_keys(value: Any, what: str) -> None:
    """Refuse a dict key, at any depth of *value*, that is not a str.

    JSON's encoder turns int, float, bool and None keys into str ones, so the
    value would not come back equal, and two memoised calls would share a
    key. *what* starts the message ("cache values").
    """
    error = _key_error(value, what)
    if error is not None:
        raise error


def _key_error(value: Any, what: str) -> InvalidValueError | None:
    """The error naming the first dict key of *value* that is not a str, or None if all are."""
    try:
        key = _non_str_key(value)
    except RecursionError:
        return InvalidValueError(f"{what} must be JSON values: this one is nested too deeply, or contains itself")
    if key is _NO_KEY:
        return None
    return InvalidValueError(f"{what} must be JSON values, whose dict keys are str: the key {key!r:.80} is of"
                             f" type {type(key).__name__}; convert it with str(), or use a list of [key, value] pairs")


_SCALARS = frozenset({str, int, float, bool, type(None)})
_NO_KEY = object()


def _non_str_key(value: Any) -> Any:
    """The first dict key, at any depth, that is not a str; _NO_KEY if there is none.

    A plain recursive loop: it walked a list of 10,000 small dicts faster
    than breadth-first passes of C iterators (3.8 ms against 6.6 ms).
    """
    if isinstance(value, dict):
        for key, child in value.items():
            if type(key) is not str and not isinstance(key, str):
                return key
            if type(child) not in _SCALARS and (found := _non_str_key(child)) is not _NO_KEY:
                return found
    elif isinstance(value, (list, tuple)):
        for child in value:
            if type(child) not in _SCALARS and (found := _non_str_key(child)) is not _NO_KEY:
                return found
    return _NO_KEY
