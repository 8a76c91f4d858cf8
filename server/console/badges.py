"""The officer's door code (亮码检查, issue 16 item 3): issuing and checking short-lived signed codes.

An officer at an enterprise's door asks for a code for the inspection under way; the phone shows it as a QR code of
the address ``/check/<code>``, which the enterprise opens with any phone camera. The rules (docs/badge.md):

* only an officer taking part in the inspection, with the part still open and a valid credential, gets a code;
* a code lives ``LIFETIME_MS`` (5 minutes) and may be opened any number of times within it while the inspection is
  under way (the enterprise's staff look, show their manager, reload);
* a code is *replayed* once a newer code was issued to the same officer for the same inspection (the old one is
  superseded: a screenshot passed around dies when the officer shows a fresh code), or once the officer's part or the
  whole inspection ended (a kept code must not vouch for a later visit);
* a code is *forged* when its text is malformed, its tag does not verify, or no such code was issued;
* a code issued "in the future" by more than ``CLOCK_TOLERANCE_MS`` is refused: the servers' clocks disagree.

The code is ``B1.<id>.<expiry, Unix seconds>.<tag>``: the tag is HMAC-SHA256 over the text before it, with a key
of its own kept beside the enterprise-code key (``<key base>.badge.key``, mode 0600), truncated to 120 bits and
written in base32. Only this server ever checks a code (the enterprise's phone merely opens a page), so a secret
key suffices and keeps the code short (a small QR code reads off a phone screen); the server's Ed25519 key signs
receipts for devices and is kept for that one purpose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from server.errors import Conflict, DomainError, Forbidden, NotFound, TooManyRequests
from server.secret_files import read_or_create_secret
from server.storage import badges as store
from server.storage import inspections as inspection_rows
from server.storage.engine import Tx

#: How long a code is good for.
LIFETIME_MS = 5 * 60_000
#: A code issued later than the checking server's clock by more than this is refused.
CLOCK_TOLERANCE_MS = 60_000
#: Rate limit per officer: at most RATE_PER_MINUTE codes in a minute and RATE_PER_HOUR in an hour.
RATE_PER_MINUTE = 5
RATE_PER_HOUR = 40
VERSION = "B1"
CODE_PATTERN = re.compile(r"^B1\.([A-Z2-7]{16})\.([0-9]{10})\.([A-Z2-7]{24})$")
_KEY_BYTES = 32
_TAG_BYTES = 15


class BadgeRefused(DomainError):
    """A code the check page refuses: ``status_code`` and a Chinese and an English explanation."""

    def __init__(self, status: int, kind: str, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.status_code = status  # type: ignore[misc]  # per instance: forged 400, replayed 409, expired 410
        self.kind = kind
        self.zh = zh
        self.en = en


_ADVICE_ZH = "请不要据此配合检查，请执法人员重新出示亮码，或拨打 12345 向执法监督机构核实。"
_ADVICE_EN = "Do not rely on it: ask the officer to show a fresh code, or call 12345 to check with the supervision office."


def forged(why_zh: str, why_en: str) -> BadgeRefused:
    return BadgeRefused(400, "forged", f"{why_zh}{_ADVICE_ZH}", f"{why_en[0].upper()}{why_en[1:]} {_ADVICE_EN}")


# --------------------------------------------------------------------------------------------- the key


def key_path(key_base: Path) -> Path:
    """Where the door-code key lives, beside the enterprise-code key (settings.key_base)."""
    return key_base.with_name(f"{key_base.name}.badge.key")


_KEYS: dict[Path, bytes] = {}


def load_key(key_base: Path) -> bytes:
    """The door-code HMAC key, created (mode 0600, atomically: processes starting at once end with one key) on first
    use; a key file that is empty or not a key stops the caller with an error naming the file."""
    path = key_path(Path(key_base))
    if path in _KEYS:
        return _KEYS[path]
    try:
        text = read_or_create_secret(path, lambda: secrets.token_hex(_KEY_BYTES) + "\n").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise RuntimeError(f"{path}: cannot read the door-code key: {getattr(e, 'strerror', None) or e}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != _KEY_BYTES:
        raise RuntimeError(f"{path}: the door-code key must be {2 * _KEY_BYTES} hex characters (the file is empty or damaged)")
    _KEYS[path] = key
    return key


# --------------------------------------------------------------------------------------------- the text


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def _tag(key: bytes, signed: str) -> str:
    return _b32(hmac.new(key, signed.encode(), hashlib.sha256).digest()[:_TAG_BYTES])


def make_code(key: bytes, badge_id: str, expires_ms: int) -> str:
    """The code's text for an issued code."""
    signed = f"{VERSION}.{badge_id}.{expires_ms // 1000:010d}"
    return f"{signed}.{_tag(key, signed)}"


def parse_code(key: bytes, text: str) -> tuple[str, int]:
    """(badge id, expiry in ms) of a code whose tag verifies; BadgeRefused (forged) otherwise."""
    m = CODE_PATTERN.fullmatch(text)  # not match: its "$" lets a trailing newline through (an altered code)
    if m is None:
        raise forged("这不是本平台签发的亮码（内容不完整或格式不符）。", "this is not a door code of this platform (incomplete or malformed).")
    signed = text.rsplit(".", 1)[0]
    if not hmac.compare_digest(_tag(key, signed), m.group(3)):
        raise forged("签名不符，亮码可能是伪造的或被改动过。", "its signature does not match: forged or altered.")
    return m.group(1), int(m.group(2)) * 1000


# --------------------------------------------------------------------------------------------- issuing


@dataclass(frozen=True, slots=True)
class Issued:
    """A code just issued."""

    code: str
    issued_ms: int
    expires_ms: int
    superseded: int  # how many older codes of the officer for this inspection it replaced


def issue(tx: Tx, key: bytes, inspection_id: str, officer_id: str, now_ms: int) -> Issued:
    """Issue a code to an officer for an inspection they take part in (inside a write transaction)."""
    if not inspection_rows.inspection_exists(tx, inspection_id):
        raise NotFound(f"检查记录 {inspection_id} 不存在 / inspection {inspection_id!r} does not exist")
    took_part, part_ended = store.part_state(tx, inspection_id, officer_id)
    if not took_part:
        raise Forbidden("只有参加本次检查的执法人员可以亮码 / only the officers taking part in this inspection may show its code")
    facts = store.facts(tx, inspection_id)
    assert facts is not None
    if facts.status != "open" or part_ended is not None:
        raise Conflict("本次检查（或您在其中的部分）已结束，不能再亮码 / the inspection (or your part in it) has ended: no code")
    cred = inspection_rows.credential_row(tx, officer_id)
    if cred is None or cred[6] is not None or not cred[4] <= now_ms <= cred[5]:
        raise Conflict("您的执法证不在有效期内或已被吊销，不能亮码 / your enforcement credential is not valid: no code")
    store.lock_officer(tx, officer_id)  # two requests at once: one after the other, so one code stays live and the limit holds
    _rate_limit(tx, officer_id, now_ms)
    superseded = store.supersede(tx, inspection_id, officer_id, now_ms)
    badge_id = _b32(secrets.token_bytes(10))
    expires_ms = now_ms + LIFETIME_MS
    expires_ms -= expires_ms % 1000  # the text carries whole seconds
    store.insert(tx, store.Badge(badge_id, inspection_id, officer_id, now_ms, expires_ms, None, None))
    return Issued(make_code(key, badge_id, expires_ms), now_ms, expires_ms, superseded)


def _rate_limit(tx: Tx, officer_id: str, now_ms: int) -> None:
    for window_ms, most in ((60_000, RATE_PER_MINUTE), (3_600_000, RATE_PER_HOUR)):
        count, oldest = store.issued_since(tx, officer_id, now_ms - window_ms)
        if count >= most:
            wait_s = max(1, (int(oldest or now_ms) + window_ms - now_ms + 999) // 1000)
            raise TooManyRequests(
                f"亮码请求过于频繁，请 {wait_s} 秒后再试（已出示的亮码在有效期内仍可使用） / too many codes asked for: try again in {wait_s} s"
                " (the code shown is still good within its lifetime)",
                retry_after_s=wait_s,
            )


# --------------------------------------------------------------------------------------------- checking


def check(tx: Tx, key: bytes, text: str, now_ms: int) -> store.Badge:
    """The issued code a text names, if the enterprise may rely on it now; BadgeRefused with the reason otherwise."""
    badge_id, expires_ms = parse_code(key, text)
    badge = store.get(tx, badge_id)
    if badge is None or badge.expires_ms != expires_ms:
        raise forged("平台没有签发过这个亮码。", "this platform never issued this code.")
    if badge.issued_ms > now_ms + CLOCK_TOLERANCE_MS:
        raise BadgeRefused(
            409, "clock",
            f"亮码的签发时间晚于平台当前时间，无法确认其有效性（平台时钟异常）。{_ADVICE_ZH}",
            f"The code was issued later than the platform's current time, so it cannot be relied on (a clock is wrong). {_ADVICE_EN}",
        )  # fmt: skip
    if now_ms > badge.expires_ms:
        raise BadgeRefused(
            410, "expired",
            f"亮码已过期（每个亮码只在签发后 {LIFETIME_MS // 60_000} 分钟内有效）。请执法人员在手机上重新亮码。",
            f"The code has expired (each code is good for {LIFETIME_MS // 60_000} minutes). Ask the officer to show a fresh code on the phone.",
        )  # fmt: skip
    if badge.superseded_ms is not None:
        raise BadgeRefused(
            409, "superseded",
            f"该亮码已被同一执法人员新出示的亮码取代，旧码不再有效。{_ADVICE_ZH}",
            f"This code was replaced by a newer code the same officer showed; the old one is no longer valid. {_ADVICE_EN}",
        )  # fmt: skip
    facts = store.facts(tx, badge.inspection_id)
    _, part_ended = store.part_state(tx, badge.inspection_id, badge.officer_id)
    if facts is None or facts.status != "open" or part_ended is not None:
        raise BadgeRefused(
            409, "ended",
            f"该亮码所属的检查已结束，亮码不再有效，不能用于另一次检查。{_ADVICE_ZH}",
            f"The inspection this code was shown for has ended; the code is no longer valid and cannot vouch for another visit. {_ADVICE_EN}",
        )  # fmt: skip
    return badge
