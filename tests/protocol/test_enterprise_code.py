"""Enterprise QR codes (protocol.enterprise_code) and the GB 32100 check character (protocol.creditcode).

The worked example below is printed in protocol/README.md ("Enterprise QR codes"); Ed25519 is
deterministic, so a firmware maker can reproduce every value from the seed.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from pathlib import Path

import pytest
import segno

import protocol
from protocol.creditcode import CHARSET, WEIGHTS, CreditCodeError, check_character, is_valid, validate
from protocol.enterprise_code import CodeError, EnterpriseCode, issue, verify
from protocol.signing import SigningKey, VerifyKey

README = Path(protocol.__file__).resolve().parent / "README.md"
EXAMPLES_DIR = README.parent / "examples"

# --------------------------------------------------------------------------- the worked example (README)

SEED_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
PUBLIC_KEY_HEX = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
KEY_ID = "K1"
CREDIT_CODE = "91350100M000100Y43"
ISSUED = dt.date(2026, 11, 24)
SIGNED_TEXT = "FE1:91350100M000100Y43:K1:20261124"
SIG_HEX = (
    "092e5dd142141f1e10f9fc0b1154db35239c6d7db12e24626cc3039a4fd730f7"
    "cce7696ab6c3da3ccd291389f139f82a39ed1825167d0894f28a7d361a000a0a"
)
SIG_BASE32 = "BEXF3UKCCQPR4EHZ7QFRCVG3GURZY3L5WEXCIYTMYMBZUT6XGD34ZZ3JNK3MHWR4ZUURHCPRHH4CUOPNDASRM7IISTZIU7JWDIAAUCQ"
TEXT = SIGNED_TEXT + ":" + SIG_BASE32

#: The characters a QR code's alphanumeric mode can hold (ISO/IEC 18004).
QR_ALPHANUMERIC = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.from_seed(bytes.fromhex(SEED_HEX))


@pytest.fixture(scope="module")
def keys(key: SigningKey) -> dict[str, VerifyKey]:
    return {KEY_ID: VerifyKey.from_hex(PUBLIC_KEY_HEX)}


def _reason(text: str, keys: dict[str, VerifyKey]) -> str:
    with pytest.raises(CodeError) as err:
        verify(text, keys)
    return err.value.reason


def _signed(key: SigningKey, signed_text: str) -> str:
    """A text signed exactly like issue() does, without issue()'s checks of the content."""
    return signed_text + ":" + base64.b32encode(key.sign(signed_text.encode("ascii"))).decode("ascii").rstrip("=")


def test_worked_example_values(key: SigningKey) -> None:
    assert key.public_hex == PUBLIC_KEY_HEX
    assert issue(CREDIT_CODE, key, KEY_ID, ISSUED) == TEXT
    assert key.sign(SIGNED_TEXT.encode("ascii")).hex() == SIG_HEX
    assert base64.b32encode(bytes.fromhex(SIG_HEX)).decode("ascii") == SIG_BASE32 + "="  # one '=' of padding, left out
    assert len(SIG_BASE32) == 103 and len(TEXT) == 138
    assert TEXT.rsplit(":", 1)[0] == SIGNED_TEXT


def test_worked_example_verifies(keys: dict[str, VerifyKey]) -> None:
    assert VerifyKey.from_hex(PUBLIC_KEY_HEX).verify(SIGNED_TEXT.encode("ascii"), bytes.fromhex(SIG_HEX))
    assert verify(TEXT, keys) == EnterpriseCode(credit_code=CREDIT_CODE, key_id=KEY_ID, issued=ISSUED, text=TEXT)


def test_readme_shows_the_worked_example() -> None:
    readme = README.read_text(encoding="utf-8")
    for value in (SEED_HEX, PUBLIC_KEY_HEX, SIGNED_TEXT, SIG_HEX, TEXT, SIGNED_TEXT.encode("ascii").hex()):
        assert value in readme
    assert "(31 - sum % 31) % 31" in readme
    assert CHARSET in readme


# --------------------------------------------------------------------------- issue and verify


@pytest.mark.parametrize("credit_code", [CREDIT_CODE, "9144030071526726XG", "914403001922038216", "91110108MA01R8KX3B"])
@pytest.mark.parametrize("key_id", ["K1", "K2026B", "ZZZZZZZZ", "7"])
def test_issue_verify_round_trip(credit_code: str, key_id: str) -> None:
    k = SigningKey.generate()
    issued = dt.date(2027, 2, 28)
    text = issue(credit_code, k, key_id, issued)
    got = verify(text, {key_id: VerifyKey(k.public_bytes)})
    assert (got.credit_code, got.key_id, got.issued, got.text) == (credit_code, key_id, issued, text)


def test_issue_upper_cases_and_checks_the_credit_code(key: SigningKey) -> None:
    assert issue(CREDIT_CODE.lower(), key, KEY_ID, ISSUED) == TEXT
    with pytest.raises(CreditCodeError):
        issue("91350100M000100Y44", key, KEY_ID, ISSUED)  # wrong check character
    with pytest.raises(CreditCodeError):
        issue("91350100M000100Y4", key, KEY_ID, ISSUED)


@pytest.mark.parametrize("key_id", ["", "k1", "K-1", "K12345678", "K 1"])
def test_issue_refuses_a_bad_key_id(key: SigningKey, key_id: str) -> None:
    with pytest.raises(ValueError, match="key id"):
        issue(CREDIT_CODE, key, key_id, ISSUED)


def test_the_signature_covers_everything_before_the_last_colon(key: SigningKey, keys: dict[str, VerifyKey]) -> None:
    assert _signed(key, SIGNED_TEXT) == TEXT


def _replace_at(text: str, index: int, new: str) -> str:
    return text[:index] + new + text[index + 1 :]


@pytest.mark.parametrize(
    "altered",
    [
        pytest.param(TEXT.replace(CREDIT_CODE, "9144030071526726XG"), id="other_valid_credit_code"),
        pytest.param(TEXT.replace(CREDIT_CODE, "91350100M000100Y44"), id="credit_code_check_char"),
        pytest.param(TEXT.replace(":20261124:", ":20261125:"), id="date"),
        pytest.param(TEXT.replace(":20261124:", ":20271124:"), id="year"),
        pytest.param(_replace_at(TEXT, 40, "A" if TEXT[40] != "A" else "B"), id="signature_first_char"),
        pytest.param(_replace_at(TEXT, 90, "7" if TEXT[90] != "7" else "6"), id="signature_middle_char"),
        pytest.param(TEXT[:-2] + ("A" if TEXT[-2] != "A" else "B") + TEXT[-1], id="signature_second_last_char"),
    ],
)
def test_an_altered_code_is_refused_as_altered(altered: str, keys: dict[str, VerifyKey]) -> None:
    assert altered != TEXT and len(altered) == len(TEXT)
    assert _reason(altered, keys) == "altered"


def test_another_known_key_id_is_altered(key: SigningKey) -> None:
    other = SigningKey.generate()
    both = {"K1": VerifyKey(key.public_bytes), "K2": VerifyKey(other.public_bytes)}
    assert _reason(TEXT.replace(":K1:", ":K2:"), both) == "altered"


def test_a_code_from_another_key_with_the_same_id_is_altered() -> None:
    forged = issue(CREDIT_CODE, SigningKey.generate(), KEY_ID, ISSUED)
    assert _reason(forged, {KEY_ID: VerifyKey.from_hex(PUBLIC_KEY_HEX)}) == "altered"


def test_an_unknown_key_id_is_refused(keys: dict[str, VerifyKey]) -> None:
    assert _reason(TEXT.replace(":K1:", ":K9:"), keys) == "unknown_key"
    assert _reason(TEXT, {}) == "unknown_key"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello",
        "https://yqym.example.org/e/91310115MA1H7K2P4W?v=2&k=7Q2MH9",  # a version 1 style code: not ours
        "91350100M000100Y43",
        SIGNED_TEXT,  # no signature
        TEXT[:-1],  # 102 signature characters
        TEXT + "A",  # 104
        TEXT + "=",  # padding is not written
        TEXT.replace("FE1:", "FE2:"),
        TEXT.replace("FE1:", "fe1:"),
        TEXT.replace(":K1:", "::"),
        TEXT.replace(":K1:", ":K123456789:"),
        TEXT.replace(":20261124:", ":2026-11-24:"),
        TEXT.replace(CREDIT_CODE, CREDIT_CODE[:-1]),
        TEXT.replace(":", ";"),
        TEXT.lower(),
        TEXT[:40] + TEXT[40:].lower(),  # signature in lower case
        TEXT[:40] + "1" + TEXT[41:],  # '1' is not in the base32 alphabet
        TEXT.replace(":", " : ", 1),
        TEXT[:60] + " " + TEXT[60:],
        TEXT[:60] + "\n" + TEXT[60:],
        "\ufeff" + TEXT,
    ],
    ids=lambda t: repr(t[:24]) + f"..{len(t)}",
)
def test_garbage_is_not_ours(text: str, keys: dict[str, VerifyKey]) -> None:
    assert _reason(text, keys) == "not_ours"


@pytest.mark.parametrize("around", [(" ", ""), ("", "\n"), ("\t", "\r\n"), ("  ", "  ")], ids=["space", "newline", "tab_crlf", "both"])
def test_white_space_around_the_text_is_stripped(around: tuple[str, str], keys: dict[str, VerifyKey]) -> None:
    got = verify(around[0] + TEXT + around[1], keys)
    assert got.text == TEXT and got.credit_code == CREDIT_CODE


@pytest.mark.parametrize(
    "signed_text",
    [
        "FE1:91350100M000100Y44:K1:20261124",  # check character wrong
        "FE1:91350100M000100YZ3:K1:20261124",  # Z is not a credit-code character
        "FE1:91350100M000100Y43:K1:20261332",  # no such date
    ],
    ids=["check_char", "bad_char", "bad_date"],
)
def test_a_signed_but_invalid_content_is_refused(key: SigningKey, keys: dict[str, VerifyKey], signed_text: str) -> None:
    """Only a key holder can make these (issue() refuses to); a device still refuses them."""
    assert _reason(_signed(key, signed_text), keys) == "bad_credit_code"


def test_refusals_explain_in_chinese_and_english(keys: dict[str, VerifyKey]) -> None:
    for text, k in (("hello", keys), (TEXT, {}), (TEXT.replace(":20261124:", ":20261125:"), keys)):
        with pytest.raises(CodeError) as err:
            verify(text, k)
        message = str(err.value)
        assert re.search(r"[\u4e00-\u9fff]", message) and re.search(r"[a-z]{4}", message)


def test_only_the_canonical_last_signature_character_verifies(keys: dict[str, VerifyKey]) -> None:
    last = BASE32_ALPHABET.index(TEXT[-1])
    assert last % 8 == 0  # 512 bits = 102 * 5 + 2: the last character carries 2 bits, its low 3 bits are zero
    for value in range(last + 1, last + 8):
        assert _reason(TEXT[:-1] + BASE32_ALPHABET[value], keys) == "altered"


# --------------------------------------------------------------------------- printable as a QR code


def test_every_character_is_qr_alphanumeric() -> None:
    assert set(TEXT) <= QR_ALPHANUMERIC
    longest = issue(CREDIT_CODE, SigningKey.generate(), "ZZZZZZZZ", ISSUED)
    assert set(longest) <= QR_ALPHANUMERIC and len(longest) == 144


@pytest.mark.parametrize("key_id", ["K1", "ZZZZZZZZ"])
def test_fits_a_small_qr_symbol_at_level_m(key_id: str) -> None:
    text = issue(CREDIT_CODE, SigningKey.generate(), key_id, ISSUED)
    assert segno.make(text).mode == "alphanumeric"
    qr = segno.make(text, error="m", micro=False)
    assert qr.mode == "alphanumeric"
    assert qr.version <= 7
    assert qr.error in ("M", "Q", "H")  # level M at least (segno may raise the level if it fits the same version)
    assert segno.make(text, error="m", micro=False, boost_error=False).version == 6  # 41 x 41 modules


# --------------------------------------------------------------------------- the frozen examples agree


def test_the_scan_example_carries_a_code_the_snapshot_example_verifies() -> None:
    scan = json.loads((EXAMPLES_DIR / "enterprise_scanned.v2.json").read_text(encoding="utf-8"))
    snapshot = json.loads((EXAMPLES_DIR / "decision_snapshot.v1.json").read_text(encoding="utf-8"))
    keys = {kid: VerifyKey.from_hex(pub) for kid, pub in snapshot["code_keys"].items()}
    code = verify(scan["code_text"], keys)
    assert code.credit_code == scan["credit_code"]
    assert f"{code.credit_code}:{code.issued:%Y%m%d}" not in snapshot["revoked_codes"]
    assert any(r.startswith(code.credit_code + ":") for r in snapshot["revoked_codes"])  # an older code of it was revoked
    for entry in snapshot["revoked_codes"]:
        credit, date = entry.split(":")
        assert is_valid(credit) and dt.datetime.strptime(date, "%Y%m%d")


# --------------------------------------------------------------------------- GB 32100-2015 check character


def test_charset_and_weights() -> None:
    assert CHARSET == "0123456789ABCDEFGHJKLMNPQRTUWXY" and len(CHARSET) == 31
    assert not set("IOSVZ") & set(CHARSET)
    assert WEIGHTS == tuple(pow(3, i, 31) for i in range(17))  # 3^i mod 31


def test_check_character_worked_example() -> None:
    first17 = CREDIT_CODE[:17]
    total = sum(CHARSET.index(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    assert total == 1640 and total % 31 == 28 and (31 - total % 31) % 31 == 3
    assert check_character(first17) == "3" == CREDIT_CODE[17]


@pytest.mark.parametrize(("first17", "check"), [("9144030071526726X", "G"), ("91440300192203821", "6"), ("91110108MA01R8KX3", "B")])
def test_check_character_of_published_codes(first17: str, check: str) -> None:
    assert check_character(first17) == check


def test_a_remainder_of_zero_gives_check_character_0() -> None:
    # (31 - 0) % 31 == 0: the outer "% 31" maps a sum divisible by 31 to '0', not to an out-of-range 31.
    first17 = next(p for p in (f"9111010800000{i:04d}" for i in range(10000)) if sum(CHARSET.index(c) * w for c, w in zip(p, WEIGHTS, strict=True)) % 31 == 0)
    assert check_character(first17) == "0"
    assert is_valid(first17 + "0")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("91350100M000100Y4", "18 characters"),
        ("91350100M000100Y433", "18 characters"),
        ("91350100M000100O43", "not allowed"),
        ("91350100I000100Y43", "not allowed"),
        ("91350100M000100Y44", "expected 3"),
    ],
)
def test_validate_says_what_is_wrong(code: str, message: str) -> None:
    with pytest.raises(CreditCodeError, match=message):
        validate(code)
    assert not is_valid(code)


def test_validate_upper_cases_and_strips() -> None:
    assert validate(" 91350100m000100y43\n") == CREDIT_CODE
    assert is_valid(CREDIT_CODE)
