"""The text of an enterprise's QR code: signed by the server, checkable offline by any device.

    FE1:<credit code>:<key id>:<issue date YYYYMMDD>:<signature>

The signature is Ed25519 over the ASCII bytes of everything before the last ':', written in RFC 4648
base32 without padding (103 characters). Every character is in the QR alphanumeric set (0-9 A-Z and
``:``), so the code fits a version 6 symbol (41x41 modules) at error correction level M: small enough
to print on a door sticker and read from a metre away.
"""

from __future__ import annotations

import base64
import datetime as dt
import re

from msgspec import Struct

from protocol.creditcode import CreditCodeError, validate
from protocol.signing import SigningKey, VerifyKey

PREFIX = "FE1"
# ASCII only: in a str pattern '\d' would also match other scripts' digits (e.g. '٢'), which int() reads.
_CODE = re.compile(r"^FE1:([0-9A-Z]{18}):([0-9A-Z]{1,8}):([0-9]{8}):([A-Z2-7]{103})$", re.ASCII)


class CodeError(ValueError):
    """A code that must be refused; ``reason`` is a stable machine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class EnterpriseCode(Struct, frozen=True, kw_only=True):
    """A code whose signature verified."""

    credit_code: str
    key_id: str
    issued: dt.date
    text: str


def issue(credit_code: str, key: SigningKey, key_id: str, issued: dt.date) -> str:
    """The signed text for an enterprise's code."""
    code = validate(credit_code)
    if not re.fullmatch(r"[0-9A-Z]{1,8}", key_id):
        raise ValueError("a key id is 1-8 of 0-9 A-Z")
    signed = f"{PREFIX}:{code}:{key_id}:{issued:%Y%m%d}"
    return f"{signed}:{base64.b32encode(key.sign(signed.encode('ascii'))).decode('ascii').rstrip('=')}"


def has_code_shape(text: str) -> bool:
    """Whether ``text`` is shaped exactly as an enterprise code with a valid credit code (its signature unchecked: that
    needs the keys, ``verify``). The QR reader accepts nothing else from its riskiest steps."""
    m = _CODE.fullmatch(text)
    if m is None:
        return False
    try:
        validate(m.group(1))
    except CreditCodeError:
        return False
    return True


def verify(text: str, keys: dict[str, VerifyKey]) -> EnterpriseCode:
    """Check a scanned text; CodeError says why it is refused (not_ours, altered, unknown_key, bad_credit_code)."""
    t = text.strip()
    m = _CODE.fullmatch(t)
    if not m:
        raise CodeError("not_ours", "这不是本平台签发的企业码 / not an enterprise code issued by this platform")
    credit, kid, date, sig32 = m.groups()
    key = keys.get(kid)
    if key is None:
        raise CodeError("unknown_key", f"企业码由未知密钥 {kid} 签发 / the code was signed by an unknown key {kid}")
    sig = base64.b32decode(sig32 + "=" * (-len(sig32) % 8))
    if base64.b32encode(sig).decode("ascii").rstrip("=") != sig32:
        # b32decode ignores the unused low bits of the last character: only the canonical text is genuine.
        raise CodeError("altered", "企业码签名不符，可能被篡改 / the code's signature does not match: it was altered or forged")
    signed = t.rsplit(":", 1)[0]
    if not key.verify(signed.encode("ascii"), sig):
        raise CodeError("altered", "企业码签名不符，可能被篡改 / the code's signature does not match: it was altered or forged")
    try:
        validate(credit)
        issued = dt.date(int(date[:4]), int(date[4:6]), int(date[6:]))
    except (CreditCodeError, ValueError) as e:
        raise CodeError("bad_credit_code", f"企业码内容无效 / the code's content is invalid: {e}") from None
    return EnterpriseCode(credit_code=credit, key_id=kid, issued=issued, text=t)
