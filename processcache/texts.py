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
"""

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
