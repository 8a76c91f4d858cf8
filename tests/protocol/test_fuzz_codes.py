"""Fuzzing the enterprise-code parser and the credit-code check with random text and mutations of valid codes.

Mutations: characters replaced, inserted, deleted, swapped, case-flipped, truncated, padded with white space,
and written as look-alikes Python may read as ASCII (other scripts' digits, compatibility forms, 'ﬀ'.upper()).
Properties: only the documented refusal (``CodeError`` with its reason, ``CreditCodeError``) is ever raised; a
mutated genuine code never verifies (white space around it aside); a mutated valid credit code never validates.
"""

from __future__ import annotations

import datetime as dt
import os
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.creditcode import CHARSET, CreditCodeError, check_character, validate
from protocol.enterprise_code import CodeError, issue, verify
from protocol.signing import SigningKey

#: Text parsers take microseconds: a thousand-odd examples per target still run in about a second or two.
EXAMPLES = 3 * int(os.environ.get("FE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

CODE_REASONS = {"not_ours", "altered", "unknown_key", "bad_credit_code"}
CODE_KEY = SigningKey.from_seed(bytes(range(2, 34)))
GENUINE_CREDIT_CODE = "91350100M000100Y43"
GENUINE_CODE = issue(GENUINE_CREDIT_CODE, CODE_KEY, "K1", dt.date(2025, 3, 14))
CODE_KEYS = {"K1": CODE_KEY.verifier()}


#: Characters a mutation of a code may bring in: the code's own alphabet, lower case, white space, separators.
CODE_CHARS = st.sampled_from(sorted(set("FE1:0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ234567=abcxyz -\t\n\x00\u3000")))


def _lookalikes() -> dict[str, list[str]]:
    """ASCII text -> other characters that Python may read as it: other scripts' digits (int('٢') == 2),
    compatibility forms (NFKC 'Ｆ' is 'F') and case mappings ('ﬀ'.upper() == 'FF')."""
    found: dict[str, list[str]] = {}
    for i in range(0x80, 0x30000):
        c = chr(i)
        readings = {unicodedata.normalize("NFKC", c), c.upper()} | ({str(int(c))} if c.isdecimal() else set())
        for text in readings:
            if text and text.isascii() and text.isalnum() or text == ":":
                found.setdefault(text, []).append(c)
    return found


LOOKALIKES = _lookalikes()


@st.composite
def mutated_text(draw: st.DrawFn, seed: str) -> str:
    """A text with a few character-level mutations."""
    chars = list(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "swap", "case", "truncate", "pad", "lookalike"]))
        at = draw(st.integers(0, max(0, len(chars) - 1)))
        text = "".join(chars)
        if op == "lookalike" and (present := sorted(k for k in LOOKALIKES if k in text)):
            old = draw(st.sampled_from(present))
            starts = [i for i in range(len(text)) if text.startswith(old, i)]
            i = draw(st.sampled_from(starts))
            chars = list(text[:i] + draw(st.sampled_from(LOOKALIKES[old])) + text[i + len(old) :])
        elif op == "replace" and chars:
            chars[at] = draw(CODE_CHARS)
        elif op == "insert":
            chars.insert(at, draw(CODE_CHARS))
        elif op == "delete" and chars:
            del chars[at]
        elif op == "swap" and at + 1 < len(chars):
            chars[at], chars[at + 1] = chars[at + 1], chars[at]
        elif op == "case" and chars:
            chars[at] = chars[at].swapcase()
        elif op == "truncate":
            del chars[at:]
        elif op == "pad":
            chars = [draw(st.sampled_from([" ", "\n", "\u3000", "\t"]))] + chars + [draw(st.sampled_from(["", " ", "\r\n"]))]
    return "".join(chars)


@st.composite
def lookalike_once(draw: st.DrawFn, seed: str) -> str:
    """The text with one character written as another that Python may read as it."""
    i = draw(st.sampled_from([i for i, ch in enumerate(seed) if ch in LOOKALIKES]))
    return seed[:i] + draw(st.sampled_from(LOOKALIKES[seed[i]])) + seed[i + 1 :]


def _verify_or_refuse(text: str) -> str | None:
    try:
        return verify(text, CODE_KEYS).text
    except CodeError as e:
        assert e.reason in CODE_REASONS, f"undocumented refusal {e.reason!r}: {e}"
        assert str(e)
        return None


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.text(max_size=30).map(lambda t: "FE1:" + t), mutated_text(GENUINE_CODE), lookalike_once(GENUINE_CODE)))
def test_enterprise_code_parser_refuses_only_with_code_error(text: str) -> None:
    _verify_or_refuse(text)


@FUZZ
@given(text=st.one_of(mutated_text(GENUINE_CODE), lookalike_once(GENUINE_CODE)))
def test_a_mutated_enterprise_code_never_verifies(text: str) -> None:
    accepted = _verify_or_refuse(text)
    if accepted is not None:  # only surrounding white space may differ from the genuine code
        assert text.strip() == GENUINE_CODE and accepted == GENUINE_CODE, repr(text)


def test_other_scripts_digits_in_a_code_are_refused() -> None:
    """Found by this fuzzer: '\\d' matched Arabic-Indic digits, and encoding the text then failed."""
    date = GENUINE_CODE.split(":")[3]
    forged = GENUINE_CODE.replace(f":{date}:", ":٢٠٢٥" + date[4:] + ":")
    with pytest.raises(CodeError) as err:
        verify(forged, CODE_KEYS)
    assert err.value.reason == "not_ours"


def _with_check(first17: str) -> str:
    return first17 + check_character(first17)


VALID_CREDIT_CODES = st.text(alphabet=CHARSET, min_size=17, max_size=17).map(_with_check)
#: Runs of credit-code characters that a single other character may be read as (e.g. 'ﬀ'.upper() == 'FF').
RUNS = sorted(k for k in LOOKALIKES if len(k) > 1 and set(k) <= set(CHARSET))


@st.composite
def credit_codes_with_lookalikes(draw: st.DrawFn) -> str:
    """A valid credit code with one character, or a run of characters, written as a look-alike."""
    if draw(st.booleans()):
        return draw(VALID_CREDIT_CODES.flatmap(lookalike_once))
    run = draw(st.sampled_from(RUNS))
    head = draw(st.text(alphabet=CHARSET, min_size=17 - len(run), max_size=17 - len(run)))
    at = draw(st.integers(0, len(head)))
    return _with_check(head[:at] + run + head[at:]).replace(run, draw(st.sampled_from(LOOKALIKES[run])), 1)


@FUZZ
@given(code=credit_codes_with_lookalikes())
def test_a_credit_code_written_with_lookalikes_never_validates(code: str) -> None:
    with pytest.raises(CreditCodeError):
        validate(code)


@FUZZ
@given(code=st.one_of(st.text(max_size=40), st.text(alphabet=CHARSET + "abcISOVZ ", min_size=16, max_size=20), VALID_CREDIT_CODES.flatmap(mutated_text)))
def test_credit_code_validation_refuses_only_with_credit_code_error(code: str) -> None:
    try:
        valid = validate(code)
    except CreditCodeError as e:
        assert str(e)
        return
    assert code.strip().isascii() and code.strip().upper() == valid
    assert len(valid) == 18 and set(valid) <= set(CHARSET) and check_character(valid[:17]) == valid[17]


@FUZZ
@given(first17=st.text(alphabet=CHARSET, min_size=17, max_size=17), at=st.integers(0, 17), other=st.sampled_from(CHARSET), swap=st.booleans())
def test_one_changed_or_two_swapped_characters_never_validate(first17: str, at: int, other: str, swap: bool) -> None:
    code = first17 + check_character(first17)
    chars = list(code)
    if swap and at < 17:
        chars[at], chars[at + 1] = chars[at + 1], chars[at]
    else:
        chars[at] = other
    changed = "".join(chars)
    if changed == code:
        return
    with pytest.raises(CreditCodeError):
        validate(changed)


def test_characters_that_upper_case_to_ascii_are_refused() -> None:
    """Found by this fuzzer: str.upper() turned 'ﬀ' into 'FF', so a code that was not one validated."""
    code = "91350100MA0FF0" + "000"
    code += check_character(code)
    assert validate(code) == code
    with pytest.raises(CreditCodeError):
        validate(code.replace("FF", "ﬀ"))
