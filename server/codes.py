"""Enterprise QR codes: the signing key, issuing, revoking, and rendering as PNG or SVG with the name.

The code's text and its signature rule are in ``protocol.enterprise_code``; this module keeps the
server's side: which keys exist (``code_keys``), which codes were issued and revoked (``issued_codes``).
"""

from __future__ import annotations

import datetime as dt
import io
import sqlite3
import time
from pathlib import Path
from xml.sax.saxutils import escape

import segno

from protocol import enterprise_code
from protocol.creditcode import CreditCodeError, validate
from protocol.enterprise_code import CodeError, EnterpriseCode
from protocol.signing import SigningKey, VerifyKey
from server.keys import load_or_create_server_key

#: Key id of the enterprise-code signing key in use.
ACTIVE_KEY_ID = "K1"
_CST = dt.timezone(dt.timedelta(hours=8))
#: Fonts tried, in order, for the enterprise's name under a PNG code (Debian package paths).
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)


class CodeRegistryError(ValueError):
    """A code that cannot be issued or revoked, with the reason."""


def code_key_path(db_path: Path, key_id: str = ACTIVE_KEY_ID) -> Path:
    """Where an enterprise-code signing key lives (beside the database)."""
    return db_path.with_name(f"{db_path.name}.code-{key_id}.key")


def ensure_code_key(con: sqlite3.Connection, db_path: Path, key_id: str = ACTIVE_KEY_ID) -> SigningKey:
    """The signing key for enterprise codes, created and registered on first use."""
    key = load_or_create_server_key(code_key_path(db_path, key_id))
    con.execute(
        "INSERT INTO code_keys(key_id, public_key, created_ms) VALUES (?, ?, ?) ON CONFLICT(key_id) DO NOTHING",
        (key_id, key.public_hex, int(time.time() * 1000)),
    )
    return key


def verify_keys(con: sqlite3.Connection) -> dict[str, VerifyKey]:
    """Every registered, unretired code key."""
    return {kid: VerifyKey.from_hex(pub) for kid, pub in con.execute("SELECT key_id, public_key FROM code_keys WHERE retired_ms IS NULL ORDER BY key_id")}


def today_cst() -> dt.date:
    """Today's date in China Standard Time (codes carry their issue date)."""
    return dt.datetime.now(_CST).date()


def issue_code(con: sqlite3.Connection, db_path: Path, credit_code: str) -> tuple[str, str]:
    """(code text, enterprise name) for a registered enterprise; the same day's code is reused."""
    try:
        code = validate(credit_code)
    except CreditCodeError as e:
        raise CodeRegistryError(str(e)) from None
    row = con.execute("SELECT name FROM enterprises WHERE credit_code = ?", (code,)).fetchone()
    if row is None:
        raise CodeRegistryError(f"no enterprise with credit code {code} is registered")
    issued = today_cst()
    existing = con.execute("SELECT text, revoked_ms FROM issued_codes WHERE credit_code = ? AND issued = ?", (code, issued.isoformat())).fetchone()
    if existing and existing[1] is None:
        return existing[0], row[0]
    if existing:
        raise CodeRegistryError(f"today's code of {code} was revoked; a new one can be issued tomorrow")
    key = ensure_code_key(con, db_path)
    text = enterprise_code.issue(code, key, ACTIVE_KEY_ID, issued)
    con.execute(
        "INSERT INTO issued_codes(credit_code, issued, key_id, text, issued_ms) VALUES (?, ?, ?, ?, ?)",
        (code, issued.isoformat(), ACTIVE_KEY_ID, text, int(time.time() * 1000)),
    )
    return text, row[0]


def revoke_codes(con: sqlite3.Connection, credit_code: str, reason: str) -> int:
    """Revoke every unrevoked code of an enterprise; returns how many."""
    cur = con.execute(
        "UPDATE issued_codes SET revoked_ms = ?, revoked_reason = ? WHERE credit_code = ? AND revoked_ms IS NULL",
        (int(time.time() * 1000), reason, validate(credit_code)),
    )
    return cur.rowcount


def revoked_list(con: sqlite3.Connection) -> list[str]:
    """"<credit code>:<YYYYMMDD>" of every revoked code (for device snapshots)."""
    return [f"{c}:{d.replace('-', '')}" for c, d in con.execute("SELECT credit_code, issued FROM issued_codes WHERE revoked_ms IS NOT NULL ORDER BY credit_code, issued")]


def check_code(con: sqlite3.Connection, text: str) -> EnterpriseCode:
    """Verify a scanned code against the registered keys and the revocations; CodeError says why not."""
    parsed = enterprise_code.verify(text, verify_keys(con))
    row = con.execute("SELECT revoked_reason FROM issued_codes WHERE credit_code = ? AND issued = ? AND revoked_ms IS NOT NULL", (parsed.credit_code, parsed.issued.isoformat())).fetchone()
    if row is not None:
        raise CodeError("revoked", f"该企业码已作废（{row[0]}）/ the code was revoked ({row[0]})")
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
