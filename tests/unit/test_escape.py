"""pytools.escape: whatever bytes a traced process chooses come out as one
printable line, valid in JSON, and can be turned back into those bytes."""

import json

import pytest

from pytools.escape import escape, unescape

HOSTILE = [
    b"/tmp/a\nb",                               # a newline: a forged second line
    b"/tmp/\x1b[2J\x1b]0;title\x07",            # clear screen, set the title
    b"/tmp/\x9b31m",                            # C1 CSI as a raw byte (not UTF-8)
    "/tmp/\u009b31m".encode(),                  # C1 CSI as valid UTF-8
    b"/tmp/\xff\xfe\xc3(",                      # invalid UTF-8
    "/tmp/\u202eevil\u2028x".encode(),          # bidi override, line separator
    b"/tmp/back\\slash\\n",                     # a literal backslash and 'n'
    b"/tmp/" + b"d" * 250 + b"/" + b"\n" * 3800,  # 4 KiB
    b"",
]


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_bytes_are_one_inert_line_and_round_trip(raw):
    text = escape(raw)
    assert text.isprintable() and "\n" not in text and "\x1b" not in text
    assert all(not 0x80 <= ord(c) <= 0x9f for c in text)
    assert json.loads(json.dumps(text)) == text
    assert unescape(text) == raw


def test_named_escapes_and_kept_text():
    assert escape(b"a\tb\rc\nd\x1b\\") == "a\\tb\\rc\\nd\\e\\\\"
    assert escape("/srv/café/日本".encode()) == "/srv/café/日本"
    assert escape(b"\x00\x7f") == "\\x00\\x7f"
    assert escape(b"\xc3") == "\\xc3" and escape("\u0085".encode()) == "\\u0085"
    assert escape("\u202e".encode()) == "\\u202e"


def test_an_escape_sequence_in_the_name_is_not_taken_for_one():
    # A file really named "\x41" (four characters) is not the byte 0x41.
    assert escape(b"\\x41") == "\\\\x41" and unescape(escape(b"\\x41")) == b"\\x41"
