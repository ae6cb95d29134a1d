"""Bytes from the traced (file names, arguments) as one inert line.

A traced process chooses its file names: they may hold newlines, terminal
escape sequences, bytes that are not UTF-8, or run to 4 KiB. `escape` makes
any of them one printable line that a terminal shows as text and a JSON
encoder takes as valid: a backslash is doubled; \\n, \\r, \\t and \\e
(ESC) by name; other control and format characters (C0, DEL, C1 such as
CSI 0x9b, Unicode line separators and bidi overrides) as \\xHH or \\uHHHH;
a byte that is not part of valid UTF-8 as \\xHH. Valid printable UTF-8 is
kept. The same text goes to JSON, so both outputs agree and both can be
turned back into the bytes (`unescape`).
"""

from __future__ import annotations

import re
import unicodedata

NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}
_NAMED_BACK = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t", "e": "\x1b"}


def _inert(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] != "C" and category not in ("Zl", "Zp")


def escape(raw: bytes) -> str:
    """`raw` as one printable, JSON-safe line (see the module doc)."""
    text = raw.decode("utf-8", errors="surrogateescape")
    out = []
    for ch in text:
        if ch in NAMED:
            out.append(NAMED[ch])
        elif "\udc80" <= ch <= "\udcff":          # a byte that was not UTF-8
            out.append(f"\\x{ord(ch) - 0xdc00:02x}")
        elif _inert(ch):
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) >= 0x80 else f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xffff else f"\\U{ord(ch):08x}")
    return "".join(out)


_ESCAPE = re.compile(r"\\(?:([\\nrte])|x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8}))")


def unescape(text: str) -> bytes:
    """The bytes `escape` was given."""
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(text):
        out += text[pos:m.start()].encode("utf-8")
        named, byte, short, long_ = m.groups()
        if named:
            out += _NAMED_BACK[named].encode()
        elif byte:
            out.append(int(byte, 16))
        else:
            out += chr(int(short or long_, 16)).encode("utf-8")
        pos = m.end()
    out += text[pos:].encode("utf-8")
    return bytes(out)
