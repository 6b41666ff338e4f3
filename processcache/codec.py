"""How cache values are stored: JSON text, in one place.

Values are JSON values (str, int, float, bool, None, list, dict with str
keys) and come back equal. The text is ASCII-only JSON (``ensure_ascii``):
any Unicode, lone surrogates included, round-trips on every database and
column character set. NaN and infinities are refused: they are not JSON, and
an exported cache must stay readable by other tools.
"""

import json
from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

from .errors import InvalidValueError

_encoder = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))
# JSONEncoder.encode builds a new C encoder for every value; one built once
# encodes a small value 2.6x faster (create_cache_many encodes thousands).
# Without the circular-reference markers a cycle ends in RecursionError.
_c_encode = json.encoder.c_make_encoder and json.encoder.c_make_encoder(
    None, _encoder.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)
_scan_once = json.JSONDecoder().scan_once
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
        return "".join(_c_encode(value, 0)) if _c_encode else _encoder.encode(value)
    except TypeError as exc:
        raise InvalidValueError(
            f"cache values must be JSON values (str, int, float, bool, None, list, dict): {exc}"
        ) from None
    except ValueError as exc:
        raise InvalidValueError(
            f"cache values must be JSON values (NaN and infinity are not): {exc}"
        ) from None
    except RecursionError:
        raise InvalidValueError("the cache value is nested too deeply, or contains itself, to store as JSON") from None
