"""Personal data masked for whoever may not see them whole (the public page; an enterprise reading its case):
an individual's name keeps its first character, an ID number its first 3 and last 2."""

from __future__ import annotations

import re

_ID_LIKE = re.compile(r"(?<![0-9A-Za-z])([0-9]{6})[0-9]{8,11}([0-9Xx])(?![0-9A-Za-z])")


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
    return _ID_LIKE.sub(lambda m: m.group(1)[:3] + "*" * (len(m.group(0)) - 5) + m.group(0)[-2:], text)
