"""Personal data masked for whoever may not see them whole (the public page; an enterprise reading its case):
an individual's name keeps its first character, an ID number its first 3 and last 2."""

from __future__ import annotations

import re

#: Anything shaped like an ID number (15 or 18 characters, the last maybe X), however it is written: ASCII or
#: full-width digits, and single spaces or hyphens between them ("110101 19900307 1234", "１１０１０１…").
_ID_LIKE = re.compile(
    r"(?<![0-9０-９A-Za-zＡ-Ｚａ-ｚ])(?:[0-9０-９][ \u3000\-－]?){14,17}[0-9０-９XxＸｘ](?![0-9０-９A-Za-zＡ-Ｚａ-ｚ])"
)


def mask_name(name: str) -> str:
    """An individual's name partly hidden: the family name (first character) kept, the rest as *."""
    return name[:1] + "*" * max(1, len(name) - 1) if name else name


def mask_id(id_no: str | None) -> str | None:
    """An ID number masked: the first 3 and last 2 characters kept (an enterprise's credit code is public, kept)."""
    if id_no is None:
        return None
    return id_no[:3] + "*" * max(0, len(id_no) - 5) + id_no[-2:] if len(id_no) > 5 else "*" * len(id_no)


def mask_text(text: str, names: list[str]) -> str:
    """Free text with the individuals' names and anything like an ID number masked."""
    for n in sorted(set(names), key=len, reverse=True):
        if n:
            text = text.replace(n, mask_name(n))
    return _ID_LIKE.sub(lambda m: m.group(0)[:3] + "*" * (len(m.group(0)) - 5) + m.group(0)[-2:], text)
