"""Values as people read them: NULL and '' told apart, and what the eye cannot see made visible
(trailing and leading spaces, tabs, line breaks, NUL, non-breaking and zero-width spaces). Shared by
the terminal summaries of the checks and by the HTML reports."""

from __future__ import annotations

import re

# Characters nobody sees on a page or a terminal, and what is shown instead.
INVISIBLE = {"\t": "→", "\n": "↵", "\r": "␍", "\x00": "␀", "\u00a0": "⍽", "\u200b": "[ZWSP]", "\u200c": "[ZWNJ]",
             "\u200d": "[ZWJ]", "\ufeff": "[BOM]", "\u2028": "[LS]", "\u2029": "[PS]"}
_SPECIAL = re.compile(r"^ +| +$| {2,}|[\x00-\x1f\x7f\u0085\u00a0\u200b-\u200d\u2028\u2029\ufeff]")


def pieces(text: str) -> list[tuple[str, bool]]:
    """(piece, invisible) pairs: spaces at either end (and runs of them) as '·', control and
    zero-width characters by a sign or their code point."""
    out, at = [], 0
    for m in _SPECIAL.finditer(text):
        if m.start() > at:
            out.append((text[at:m.start()], False))
        s = m.group()
        out.append(("·" * len(s) if s[0] == " " else INVISIBLE.get(s, f"[U+{ord(s):04X}]"), True))
        at = m.end()
    if at < len(text):
        out.append((text[at:], False))
    return out


def plain_text(value, *, quote: bool = False) -> str:
    """A value for a terminal line: NULL, '' for the empty string, text with invisible characters shown."""
    if value is None:
        return "NULL"
    if not isinstance(value, str):
        return str(value)
    if value == "":
        return "''"
    text = "".join(p for p, _ in pieces(value))
    return f'"{text}"' if quote else text
