"""Texts stored as they were written where possible, and always storable.

Log messages, errors and tracebacks come from anywhere: an exception can
quote binary data or a whole HTTP response. PostgreSQL's text cannot hold
NUL, no database takes a lone surrogate (what Python makes of undecodable
bytes, as in a subprocess's output read with ``errors="surrogateescape"``),
and MySQL refuses a statement over ``max_allowed_packet`` by closing the
connection, so a failure that quoted any of these could not be recorded at
all. Such text is stored with each NUL written as ``\\x00``, each lone
surrogate as ``\\udcff`` and, when longer than `MAX_CHARS`, with its middle
cut out and the cut said in its place (the start says what happened, the
end holds the exception line).

Shown on a terminal (`shown`), a stored text is escaped instead, and stays
unchanged in the database: a log message, an error or a machine name is
anyone's, and a carriage return, an escape sequence or a right-to-left
override in it would let it overwrite or disguise the lines around it (a
forged line printed over a real ERROR). Every control character (C0, DEL,
C1), the bidirectional formatting characters (U+061C, U+200E, U+200F,
U+202A-U+202E, U+2066-U+2069), the line and paragraph separators and lone
surrogates are written as visible escapes: ``\\r``, ``\\n``, ``\\t``,
``\\x1b``, ``\\u202e``. Where a text of several lines is shown as such (a
log message, a traceback), ``\\n`` and ``\\t`` are kept (*lines*). A
backslash is doubled only where it could be read as the start of an
escape (before ``\\``, ``r``, ``n``, ``t``, ``x``, ``u`` or an escaped
character), so a Windows path mostly reads as written, and two different
texts are never shown alike. JSON for machines keeps the exact value
(`shown_json`).
"""

import re

#: The longest text stored in a log message, an error or a traceback.
MAX_CHARS = 256 * 1024


def storable(text: str | None, limit: int = MAX_CHARS) -> str | None:
    """*text* as processcache stores it; see the module docstring."""
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) <= limit:
        return text
    head = limit * 3 // 4
    tail = limit - head
    cut = len(text) - head - tail
    marker = f"[... {cut} characters cut by processcache: the text was too long to store ...]"
    return f"{text[:head]}\n{marker}\n{text[-tail:]}"


#: What a terminal acts on instead of showing, beyond C0: DEL, C1, the bidirectional controls, U+2028/9, surrogates.
_ACTED_ON = "\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
_UNSHOWN = {lines: re.compile(f"\\\\(?=[\\\\rntxu{acted}])|[{acted}]")
            for lines, acted in ((False, "\x00-\x1f" + _ACTED_ON), (True, "\x00-\x08\x0b-\x1f" + _ACTED_ON))}
_NAMED = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", "\t": "\\t"}
_IN_JSON = re.compile(f"[{_ACTED_ON}]")  # json.dumps escapes C0 itself


def same_text(column: str, value: str) -> str:
    """SQL true when *column* holds exactly the text *value* (a ``$parameter`` or another column).

    MySQL and MariaDB compare ``'m'`` and ``'m '`` as equal (PAD SPACE, even
    in a binary collation), which would make two machines one; the equal
    length tells them apart, while the ``=`` still walks the index.
    """
    return f"{column} = {value} AND LENGTH({column}) = LENGTH({value})"


def shown(text: str, lines: bool = False) -> str:
    """*text* as a terminal may show it, every character it would act on escaped; see the module docstring.

    >>> print(shown("ok\\r[ERROR] forged"))
    ok\\r[ERROR] forged

    With *lines*, newlines and tabs are kept: the caller shows the lines.
    """
    return _UNSHOWN[lines].sub(_escape, text)


def _escape(match: re.Match) -> str:
    char = match[0]
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def shown_json(text: str) -> str:
    """JSON *text* (written with ``ensure_ascii=False``) with what `shown` escapes as JSON's ``\\uXXXX``: the
    same value, safe on a terminal."""
    return _IN_JSON.sub(lambda match: f"\\u{ord(match[0]):04x}", text)
