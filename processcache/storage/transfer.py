"""The line format of `processcache cache export`, and the strict reading `cache import` gives it.

One JSON object a line: ``key``, ``value``, ``machine``, ``created_at`` (ISO
8601; a time without an offset is UTC, as everywhere in processcache) and
``expires_at`` (seconds since the epoch, or null). Import refuses anything an
export cannot have written, naming the line and the field, so a bad file is
found before one row is stored. It reads bytes and decodes them as strict
UTF-8, which an export always is: Python's standard input in a C or POSIX
locale (cron's) turns undecodable bytes into lone surrogates instead, which
would be stored as a value that can never be encoded again.
"""

import json
import math
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, NamedTuple

from ..cache.codec import decode_value, encode_value
from ..errors import ImportLineError, ProcessCacheError
from ..names import check_key, check_machine

REQUIRED = ("key", "value", "machine", "created_at")


class ExportedEntry(NamedTuple):
    """One entry as exported: what `CacheStore.restore` stores again."""

    machine: str
    key: str
    text: str  # the stored JSON text of the value
    created_at: datetime
    expires_at: float | None

    def line(self) -> dict[str, Any]:
        """The JSON object `cache export` writes for this entry."""
        return {"key": self.key, "value": decode_value(self.text), "machine": self.machine,
                "created_at": self.created_at, "expires_at": self.expires_at}


def parse_lines(lines: Iterable[bytes], machine: str | None = None) -> list[ExportedEntry]:
    """Every line of an export, read as bytes (blank lines skipped), as entries; `ImportLineError` at the first
    line that is not one, invalid UTF-8 included."""
    return [parse_line(number, _text(number, line), machine) for number, line in enumerate(lines, 1) if line.strip()]


def _text(number: int, line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportLineError(f"line {number}: byte {exc.start + 1} (0x{line[exc.start]:02x}) is not UTF-8,"
                              " which `cache export` always writes") from None


def parse_line(number: int, line: str, machine: str | None = None) -> ExportedEntry:
    """Line *number* of an export as an entry (stored as *machine*'s when given); `ImportLineError` if it is not one."""
    item = _json_object(number, line)
    missing = [name for name in REQUIRED if name not in item]
    if missing:
        raise ImportLineError(f"line {number}: missing field {', '.join(missing)}")
    return ExportedEntry(
        _field(number, "machine", check_machine, machine or item["machine"]),
        _field(number, "key", check_key, item["key"]),
        _field(number, "value", encode_value, item["value"]),
        _field(number, "created_at", _utc_time, item["created_at"]),
        _field(number, "expires_at", _epoch_seconds, item.get("expires_at")))


def _json_object(number: int, line: str) -> dict:
    try:
        item = json.loads(line)
    except RecursionError:
        raise ImportLineError(f"line {number}: nested too deeply to read") from None
    except ValueError as exc:
        raise ImportLineError(f"line {number}: not JSON ({getattr(exc, 'msg', exc)}, column"
                              f" {getattr(exc, 'colno', '?')})") from None
    if not isinstance(item, dict):
        raise ImportLineError(f"line {number}: a {type(item).__name__}, not the JSON object `cache export` writes")
    return item


def _field(number: int, name: str, check, value):
    try:
        return check(value)
    except (ProcessCacheError, TypeError, ValueError) as exc:
        raise ImportLineError(f"line {number}: {name}: {exc}") from None


def _utc_time(value) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an ISO 8601 time such as 2026-11-26T03:00:00+00:00")
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _epoch_seconds(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a number of seconds since 1970 (or null, for never)")
    return float(value)
