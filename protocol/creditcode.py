"""Unified social credit codes (统一社会信用代码, GB 32100-2015): 18 characters, the last a check character.

Layout: registration authority (1), entity type (1), administrative division (6), organisation code (9),
check character (1). Characters come from 0-9 and A-Z without I, O, S, V, Z.
"""

from __future__ import annotations

import string

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_VALUE = {c: i for i, c in enumerate(CHARSET)}
# Only ASCII letters are upper-cased: str.upper() turns some other characters into ASCII ones ('ﬀ' -> 'FF').
_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


class CreditCodeError(ValueError):
    """Not a valid unified social credit code; the message says why."""


def check_character(first17: str) -> str:
    """The check character for the first 17 characters."""
    total = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS, strict=True))
    return CHARSET[(31 - total % 31) % 31]


def validate(code: str) -> str:
    """The code, upper-cased and checked; CreditCodeError says what is wrong."""
    c = code.strip().translate(_ASCII_UPPER)
    if len(c) != 18:
        raise CreditCodeError(f"a unified social credit code has 18 characters, {code!r} has {len(c)}")
    bad = sorted({ch for ch in c if ch not in _VALUE})
    if bad:
        raise CreditCodeError(f"{code!r} contains characters not allowed in a credit code: {''.join(bad)}")
    want = check_character(c[:17])
    if c[17] != want:
        raise CreditCodeError(f"{code!r} fails its check character: expected {want}, got {c[17]}")
    return c


def is_valid(code: str) -> bool:
    """True if the code passes validate()."""
    try:
        validate(code)
    except CreditCodeError:
        return False
    return True
