"""Enterprise QR codes: the signing key, issuing, revoking, and rendering as PNG or SVG with the name.

The code's text and its signature rule are in ``protocol.enterprise_code``; this module keeps the
server's side: which keys exist (``code_keys``), which codes were issued and revoked (``issued_codes``).

A code is named by its enterprise and its date, ``<credit code>:<YYYYMMDD>``: that is what devices'
snapshots list as revoked. A revoked code is replaced at once by a code with the next date not yet used
for the enterprise (protocol/README.md, "11.1 The text"), so a revocation never blocks inspections.

Who may revoke (:func:`may_revoke`): a supervisor, the server's operator at the command line, or the
administrator of an agency responsible for the enterprise (:func:`responsible`). Every revocation
records who and why and raises a ``code_revoked`` alert.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import segno

from protocol.cst import CST
from protocol import enterprise_code
from protocol.creditcode import CreditCodeError, validate
from protocol.enterprise_code import CodeError, EnterpriseCode
from protocol.signing import SigningKey, VerifyKey
from server.rules.alerts import raise_alert
from server.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from server.evidence.keys import load_or_create_server_key
from server.storage import codes as store
from server.storage.engine import Tx

#: Key id of the enterprise-code signing key in use.
ACTIVE_KEY_ID = "K1"
#: Fonts tried, in order, for the enterprise's name under a PNG code (Debian package paths).
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)


#: How long an agency's inspection of an enterprise makes it responsible for the enterprise's code.
RESPONSIBLE_AFTER_INSPECTION_DAYS = 365
DAY_MS = 86_400_000


class CodeRegistryError(DomainError):
    """A code that cannot be issued or revoked, with the reason."""


class CreditCodeInvalid(CodeRegistryError, Invalid):
    """The credit code is malformed or its check character is wrong (400)."""


class EnterpriseUnknown(CodeRegistryError, NotFound):
    """No enterprise with this credit code is registered (404)."""


class NotResponsible(CodeRegistryError, Forbidden):
    """The user may not revoke this enterprise's code (403)."""


class NothingToRevoke(CodeRegistryError, Conflict):
    """The enterprise has no code in force (409)."""


@dataclass(frozen=True, slots=True)
class Revoker:
    """Who revokes codes: a console user (name, role, agency), or the operator at the command line."""

    username: str
    role: str
    agency_id: str | None = None


#: The revoker of ``fe-server qr --revoke``: whoever runs the server's command line on its machine.
COMMAND_LINE = Revoker(username="fe-server", role="operator")


def code_key_path(key_base: Path, key_id: str = ACTIVE_KEY_ID) -> Path:
    """Where an enterprise-code signing key lives: named after ``key_base`` (settings.key_base: the SQLite file, or
    <key_dir>/server with PostgreSQL)."""
    return key_base.with_name(f"{key_base.name}.code-{key_id}.key")


def _now_ms() -> int:
    return int(time.time() * 1000)


def ensure_code_key(con: Tx, key_base: Path, key_id: str = ACTIVE_KEY_ID) -> SigningKey:
    """The signing key for enterprise codes, created and registered on first use."""
    key = load_or_create_server_key(code_key_path(Path(key_base), key_id))
    store.add_key(con, key_id, key.public_hex, _now_ms())
    return key


def verify_keys(con: Tx) -> dict[str, VerifyKey]:
    """Every registered, unretired code key."""
    return {kid: VerifyKey.from_hex(pub) for kid, pub in store.active_keys(con).items()}


def today_cst() -> dt.date:
    """Today's date in China Standard Time (codes carry their issue date)."""
    return dt.datetime.now(CST).date()


def registered_enterprise(con: Tx, credit_code: str) -> tuple[str, str]:
    """(credit code, name) of a registered enterprise; CreditCodeInvalid or EnterpriseUnknown otherwise."""
    try:
        code = validate(credit_code)
    except CreditCodeError as e:
        raise CreditCodeInvalid(f"统一社会信用代码无效 / invalid credit code: {e}") from None
    name = store.enterprise_name(con, code)
    if name is None:
        raise EnterpriseUnknown(f"未登记统一社会信用代码为 {code} 的企业 / no enterprise with credit code {code} is registered")
    return code, name


def issue_code(tx: Tx, key_base: Path, credit_code: str, today: dt.date | None = None) -> tuple[str, str]:
    """(code text, enterprise name): the enterprise's code in force, else a new one (call inside a write transaction).

    A new code carries today's date (CST), or, if a code dated today or later was revoked, the day after
    the latest such date: a date no revoked code of the enterprise carries, so devices that list revoked
    codes as ``<credit code>:<date>`` accept the new code at once."""
    code, name = registered_enterprise(tx, credit_code)
    store.lock_enterprise_codes(tx, code)
    today = today or today_cst()
    latest = store.latest_code_from(tx, code, today.isoformat())
    if latest is not None and latest[2] is None:
        return latest[1], name
    issued = today if latest is None else dt.date.fromisoformat(latest[0]) + dt.timedelta(days=1)
    key = ensure_code_key(tx, key_base)
    text = enterprise_code.issue(code, key, ACTIVE_KEY_ID, issued)
    store.add_code(tx, code, issued.isoformat(), ACTIVE_KEY_ID, text, _now_ms())
    return text, name


def responsible(con: Tx, agency_id: str, credit_code: str, now_ms: int) -> bool:
    """Is the agency responsible for the enterprise: the enterprise is in the agency's region (an agency
    without a region covers every region), and the agency deals with it on record: one of its officers
    took part in an inspection of it in the last RESPONSIBLE_AFTER_INSPECTION_DAYS days, or one of its
    plans (random draws, ...) in force names it as a target."""
    since = now_ms - RESPONSIBLE_AFTER_INSPECTION_DAYS * DAY_MS
    return store.agency_deals_with(con, agency_id, credit_code, inspected_since=since, now_ms=now_ms)


def may_revoke(con: Tx, by: Revoker, credit_code: str, now_ms: int) -> bool:
    """A supervisor and the command line may revoke any enterprise's code; an agency's administrator only
    the code of an enterprise their agency is responsible for; nobody else."""
    if by.role in ("supervisor", COMMAND_LINE.role):
        return True
    return by.role == "agency_admin" and by.agency_id is not None and responsible(con, by.agency_id, credit_code, now_ms)


#: How a revoker's role reads in an alert (Chinese, English).
_ROLE_NAMES = {"supervisor": ("监督机构", "supervisor"), "agency_admin": ("执法机关管理员", "agency administrator"), COMMAND_LINE.role: ("服务器命令行", "server command line")}


def _who(tx: Tx, by: Revoker) -> tuple[str, str]:
    """Who revoked, as a person reads it: the agency's name (not its id), the role and the user name."""
    role_zh, role_en = _ROLE_NAMES.get(by.role, (by.role, by.role))
    names = store.agency_names(tx, by.agency_id) if by.agency_id else None
    if names is None:
        return f"{role_zh} {by.username}", f"{by.username} ({role_en})"
    return f"{names[0]}{role_zh} {by.username}", f"{by.username} ({role_en}, {names[1]})"


def revoke_codes(tx: Tx, credit_code: str, reason: str, by: Revoker = COMMAND_LINE, now_ms: int | None = None) -> int:
    """Revoke every code in force of an enterprise, recording who and why, and raise a ``code_revoked``
    alert (call inside a write transaction); returns how many. A new code can be issued at once."""
    now_ms = now_ms if now_ms is not None else _now_ms()
    code, name = registered_enterprise(tx, credit_code)
    reason = reason.strip()
    if not reason:
        raise Invalid("请说明作废原因 / give the reason for the revocation")
    if not may_revoke(tx, by, code, now_ms):
        raise NotResponsible(
            f"只有监督机构或负责该企业的执法机关可以作废其企业码（负责：企业在本机关辖区内，且本机关近 {RESPONSIBLE_AFTER_INSPECTION_DAYS} 天内检查过该企业"
            f"或有生效的计划包含该企业）/ only a supervisor or an agency responsible for {code} may revoke its code (responsible: the enterprise"
            f" is in the agency's region, and the agency inspected it in the last {RESPONSIBLE_AFTER_INSPECTION_DAYS} days or has a plan in force for it)"
        )
    store.lock_enterprise_codes(tx, code)
    dates = store.revoke_in_force(tx, code, reason=reason, username=by.username, role=by.role, agency_id=by.agency_id, now_ms=now_ms)
    if not dates:
        raise NothingToRevoke(f"企业 {code} 没有有效的企业码可作废 / {code} has no code in force to revoke")
    who_zh, who_en = _who(tx, by)
    raise_alert(
        tx, "code_revoked", now_ms,
        f"{name}的企业码已被 {who_zh} 作废，原因：{reason}。可立即重新签发。",
        f"The code of {name} ({code}) was revoked by {who_en}: {reason}. A new code can be issued at once.",
        credit_code=code, agency_id=by.agency_id, ref=",".join(f"{code}:{d.replace('-', '')}" for d in dates),
    )  # fmt: skip
    return len(dates)


def revoked_list(con: Tx) -> list[str]:
    """"<credit code>:<YYYYMMDD>" of every revoked code (for device snapshots)."""
    return [f"{c}:{d.replace('-', '')}" for c, d in store.revoked_codes(con)]


#: VerifyKey objects by public key (hex): the same bytes make the same key forever, so this never goes stale.
_VERIFY_KEYS: dict[str, VerifyKey] = {}
#: Signature checks already made: (code text, the active keys as sorted (key id, public hex) pairs) -> the parsed
#: code, or the CodeError's (reason, message). The outcome is a pure function of that pair, and the active keys are
#: read from the database on every scan, so an entry never goes stale: a key added or retired makes another pair.
#: Revocations are not cached (read on every scan below). Bounded: cleared when full (codes are re-verified).
_VERIFIED: dict[tuple[str, tuple[tuple[str, str], ...]], EnterpriseCode | tuple[str, str]] = {}
VERIFIED_MAX = 50_000
_verified_guard = threading.Lock()


def _verify_cached(text: str, active: dict[str, str]) -> EnterpriseCode:
    """``enterprise_code.verify`` against the active keys ({key id: public hex}), remembered (see ``_VERIFIED``)."""
    key = (text, tuple(sorted(active.items())))
    hit = _VERIFIED.get(key)
    if hit is None:
        keys = {}
        for kid, pub in active.items():
            vk = _VERIFY_KEYS.get(pub)
            if vk is None:
                vk = _VERIFY_KEYS[pub] = VerifyKey.from_hex(pub)
            keys[kid] = vk
        try:
            hit = enterprise_code.verify(text, keys)
        except CodeError as e:
            hit = (e.reason, str(e))
        with _verified_guard:
            if len(_VERIFIED) >= VERIFIED_MAX:
                _VERIFIED.clear()
            _VERIFIED[key] = hit
    if isinstance(hit, tuple):
        raise CodeError(*hit)
    return hit


def check_code(tx: Tx, text: str) -> EnterpriseCode:
    """Verify a scanned code against the registered keys and the revocations; CodeError says why not."""
    parsed = _verify_cached(text, store.active_keys(tx))
    reason = store.revoked_reason(tx, parsed.credit_code, parsed.issued.isoformat())
    if reason is not None:
        raise CodeError("revoked", f"该企业码已作废（{reason}）/ the code was revoked ({reason})")
    return parsed


def render_svg(text: str, name: str, scale: int = 6) -> bytes:
    """The code as SVG with the enterprise's name under it."""
    qr = segno.make(text, error="m", micro=False)
    buf = io.BytesIO()
    qr.save(buf, kind="svg", scale=scale, border=4, xmldecl=False, svgns=True)
    svg = buf.getvalue().decode()
    width, height = qr.symbol_size(scale=scale, border=4)
    label_h = 14 * scale // 2
    svg = svg.replace(f'height="{height}"', f'height="{height + label_h}"', 1)
    label = (
        f'<text x="{width / 2}" y="{height + label_h * 0.7}" text-anchor="middle" '
        f'font-family="PingFang SC, Microsoft YaHei, WenQuanYi Micro Hei, Noto Sans CJK SC, sans-serif" '
        f'font-size="{label_h * 0.6:.0f}">{escape(name)}</text></svg>'
    )
    return svg.replace("</svg>", label).encode()


def render_png(text: str, name: str, scale: int = 8) -> bytes:
    """The code as PNG with the enterprise's name under it (a CJK font from the system)."""
    from PIL import Image, ImageDraw, ImageFont

    qr = segno.make(text, error="m", micro=False)
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=scale, border=4)
    code_img = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    w, h = code_img.size
    font_size = max(14, w // 14)
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    path = next((p for p in CJK_FONTS if Path(p).exists()), None)
    font = ImageFont.truetype(path, font_size) if path else ImageFont.load_default()
    out = Image.new("L", (w, h + font_size * 2), 255)
    out.paste(code_img, (0, 0))
    draw = ImageDraw.Draw(out)
    draw.text((w / 2, h + font_size * 0.8), name, fill=0, font=font, anchor="mm")
    png = io.BytesIO()
    out.save(png, format="PNG", optimize=True)
    return png.getvalue()
