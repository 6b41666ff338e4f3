"""storage.texts: stored texts shown on a terminal escaped, every character a terminal acts on made visible."""

import json
import re

from hypothesis import example, given
from hypothesis import strategies as st

from processcache.storage.texts import shown, shown_json

#: What no shown text may hold: C0, DEL, C1, the bidirectional controls, U+2028/9, lone surrogates.
ACTED_ON = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
#: Any text, the characters an attack or an escape is made of drawn often.
texts = st.text(st.one_of(st.characters(exclude_categories=()),
                          st.sampled_from("\\\r\n\t\x1b\x00\x7f\x85\x9b\u202e\u2066\u061c\u200e\u2028\udcffrntxu0b")))
NAMED = {"\\": "\\", "r": "\r", "n": "\n", "t": "\t"}


def read_back(text: str) -> str:
    """The text `shown` was given, read from what it returned: proof that no two texts are shown alike."""
    found, i = [], 0
    while i < len(text):
        if text[i] != "\\" or i + 1 == len(text) or text[i + 1] not in "\\rntxu":
            found.append(text[i])
            i += 1
        elif text[i + 1] in NAMED:
            found.append(NAMED[text[i + 1]])
            i += 2
        else:
            digits = 2 if text[i + 1] == "x" else 4
            found.append(chr(int(text[i + 2:i + 2 + digits], 16)))
            i += 2 + digits
    return "".join(found)


@given(text=texts)
@example(text="ok\r[ERROR] forged")
@example(text="C:\\new\\x1b\\")
def test_a_shown_text_holds_nothing_a_terminal_acts_on_and_reads_back_as_the_text(text):
    line = shown(text)
    assert not ACTED_ON.search(line)
    assert read_back(line) == text


@given(text=texts)
def test_a_text_shown_as_lines_keeps_only_its_newlines_and_tabs(text):
    lines = shown(text, lines=True)
    assert set(ACTED_ON.findall(lines)) <= {"\n", "\t"}
    assert lines.count("\n") == text.count("\n") and lines.count("\t") == text.count("\t")
    assert read_back(lines) == text


@given(text=st.text(st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp"), exclude_characters="\\")))
def test_a_text_with_nothing_to_escape_is_shown_as_it_is(text):
    assert shown(text) == text


def test_the_escapes_read_as_what_they_stand_for():
    assert shown("ok\r[ERROR] forged") == "ok\\r[ERROR] forged"
    assert shown("a\x1b[2Kb\x9b\x7f") == "a\\x1b[2Kb\\x9b\\x7f"
    assert shown("desk\u202etop\u2066\u200f") == "desk\\u202etop\\u2066\\u200f"
    assert shown("two\nlines\tand a tab") == "two\\nlines\\tand a tab"
    assert shown("C:\\Users\\new") == "C:\\Users\\\\new", "a backslash doubled only where it reads as an escape"


@given(value=st.recursive(st.none() | texts, lambda inner: st.lists(inner) | st.dictionaries(texts, inner)))
def test_json_shown_on_a_terminal_is_the_same_value_and_holds_nothing_a_terminal_acts_on(value):
    text = shown_json(json.dumps(value, ensure_ascii=False))
    assert json.loads(text) == value
    assert not ACTED_ON.search(text)
