"""A supervision letter as a PDF in the usual official layout: the issuing body over a red rule, the title
(行政执法监督意见书 / 行政执法监督决定书) and the number (〔2026〕第12号), the addressee (the supervised agency), the facts,
the basis, the requirements and the deadline, then the issuing body and the date; a QR code leads to the letter's
first record in the evidence log and its inclusion proof (``GET /api/v1/evidence/proof/{record_id}``).

The library is fpdf2: pure Python (no C library, no system package beyond the font), maintained, and it embeds a
subset of a TrueType font, a TrueType collection (.ttc) included, with ToUnicode maps, so Chinese prints and its
text can be searched and copied (pdftotext reads it back). ReportLab would do too, but needs its own CID font set-up
for CJK and is larger; fpdf2 wraps CJK text by character (``WrapMode.CHAR``), which Chinese, having no spaces, needs.

The font is Debian's fonts-wqy-microhei (scripts/setup.sh installs it), found at its path or else with fc-list;
without a CJK font ``FontMissing`` says which package to install.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import logging
import subprocess
from pathlib import Path
from urllib.parse import quote

import segno
from fpdf import FPDF
from fpdf.enums import Align, WrapMode, XPos, YPos

from protocol.cst import CST
from server.supervision.workflow import LetterView

#: CJK fonts tried in order (Debian package paths); the first is the one scripts/setup.sh installs.
FONT_PATHS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
#: The family names fc-list is asked for when none of the paths exists.
FONT_FAMILIES = ("WenQuanYi Micro Hei", "Noto Sans CJK SC", "WenQuanYi Zen Hei")
FONT_PACKAGE = "fonts-wqy-microhei"
FONT = "cjk"
#: Margins as in GB/T 9704 (党政机关公文格式), in mm: top, bottom, left, right.
TOP, BOTTOM, LEFT, RIGHT = 37.0, 35.0, 28.0, 26.0
RED = (200, 0, 0)
QR_MM = 32.0
INDENT = "\u3000\u3000"  # two full-width spaces: a paragraph's first line

# fontTools logs a dozen INFO lines for each font it subsets (each PDF): not the server's news.
logging.getLogger("fontTools.subset").setLevel(logging.WARNING)


class FontMissing(RuntimeError):
    """No CJK font on this machine."""


@functools.cache
def cjk_font() -> str:
    """The path of a CJK TrueType font (or collection): a known Debian path, else what fc-list finds."""
    for path in FONT_PATHS:
        if Path(path).is_file():
            return path
    for family in FONT_FAMILIES:
        try:
            out = subprocess.run(["fc-list", family, "file"], capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            break  # no fontconfig at all
        for line in out.splitlines():
            path = line.strip().rstrip(":").strip()
            if path.lower().endswith((".ttf", ".ttc", ".otf")) and Path(path).is_file():
                return path
    raise FontMissing(
        f"未找到中文字体，无法生成文书 PDF：请安装 {FONT_PACKAGE}（apt-get install {FONT_PACKAGE}，或运行 scripts/setup.sh）/ "
        f"no CJK font for the letter's PDF: install the Debian package {FONT_PACKAGE} (scripts/setup.sh does)"
    )


def proof_url(base_url: str, record_id: str) -> str:
    """Where the QR code leads: the inclusion proof of the letter's record in the evidence log."""
    return f"{base_url.rstrip('/')}/api/v1/evidence/proof/{quote(record_id, safe=':')}"


def date_zh(iso: str) -> str:
    """2026-12-05 -> 2026年12月5日 (as dates are printed in official documents)."""
    d = dt.date.fromisoformat(iso)
    return f"{d.year}年{d.month}月{d.day}日"


def filenames(view: LetterView) -> tuple[str, str]:
    """The file's name: ASCII (``filename=``) and in Chinese (``filename*``, UTF-8)."""
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in view.letter_id)
    return f"supervision-letter-{ascii_name}.pdf", f"{view.title}{view.number}.pdf"


def content_disposition(view: LetterView) -> str:
    """``inline`` with both names (RFC 6266: a client that knows filename* takes the Chinese one)."""
    plain, zh = filenames(view)
    return f"inline; filename=\"{plain}\"; filename*=UTF-8''{quote(zh, safe='')}"


class _Letter(FPDF):
    def footer(self) -> None:
        self.set_y(-BOTTOM + 12)
        self.set_font(FONT, size=11)
        self.cell(0, 6, f"— {self.page_no()} —", align=Align.C)


def _qr_png(text: str) -> bytes:
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=10, border=4)
    return buf.getvalue()


def render_letter_pdf(view: LetterView, agency_name: str, base_url: str) -> bytes:
    """The letter as PDF bytes (A4, one page or more: long texts wrap and flow onto further pages).

    ``agency_name``: the addressee as printed (the agency's name); ``base_url``: where this server is reached
    (``http://host:port``), for the QR code's link to the letter's record and its inclusion proof."""
    pdf = _Letter(orientation="P", unit="mm", format="A4")
    pdf.add_font(FONT, "", cjk_font())
    pdf.set_margins(LEFT, TOP, RIGHT)
    pdf.set_auto_page_break(True, margin=BOTTOM)
    pdf.set_title(f"{view.title}{view.number}")
    pdf.set_author(view.issuer)
    pdf.set_subject(f"{agency_name} {view.letter_id}")
    pdf.set_creator("fe-server")
    pdf.set_creation_date(dt.datetime.fromtimestamp(view.issued_ms / 1000, CST))
    pdf.set_lang("zh-CN")
    pdf.add_page()
    width = pdf.epw

    def para(text: str, size: float = 15, align: Align = Align.L, indent: bool = True, gap: float = 2) -> None:
        pdf.set_font(FONT, size=size)
        lines = [ln.strip() for ln in text.replace("\r\n", "\n").split("\n")]
        body = "\n".join((INDENT + ln if indent and ln else ln) for ln in lines if ln or not indent)
        pdf.multi_cell(width, size * 0.55, body, align=align, wrapmode=WrapMode.CHAR, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(gap)

    # The head: the issuing body in red, the title, the number, a red rule.
    pdf.set_text_color(*RED)
    para(view.issuer, size=24, align=Align.C, indent=False, gap=4)
    pdf.set_text_color(0, 0, 0)
    para(view.title, size=22, align=Align.C, indent=False, gap=2)
    para(view.number, size=15, align=Align.C, indent=False, gap=2)
    pdf.set_draw_color(*RED)
    pdf.set_line_width(0.6)
    pdf.line(LEFT, pdf.get_y(), LEFT + width, pdf.get_y())
    pdf.set_draw_color(0, 0, 0)
    pdf.ln(6)

    # The addressee and the body.
    decision = view.kind == "decision"
    para(f"{agency_name}：", indent=False)
    para("经监督，发现你单位行政执法工作中存在以下问题：" if not decision else "经监督，你单位未按《行政执法监督意见书》的要求整改，现查明：")
    para(f"一、存在的问题\n{view.facts}" if not decision else f"一、查明的事实\n{view.facts}")
    para(f"二、依据\n{view.basis}")
    para(f"三、整改要求\n{view.requirements}" if not decision else f"三、监督决定\n{view.requirements}")
    tail = "逾期未报送或整改不到位的，将依法作出行政执法监督决定。" if not decision else "逾期不执行的，将依法提请处理。"
    para(f"请于{date_zh(view.deadline)}前将整改情况书面报送{view.issuer}。{tail}")

    # The issuing body and the date, at the right; the QR code at the left, beside them.
    record = next((s for s in view.steps if s.kind == "letter.issued"), view.steps[0] if view.steps else None)
    block_h = QR_MM + 16 if record else 24
    if pdf.get_y() + block_h > pdf.h - BOTTOM:
        pdf.add_page()
    pdf.ln(6)
    top = pdf.get_y()
    pdf.set_font(FONT, size=15)
    for text in (view.issuer, date_zh(view.issued_on)):
        pdf.set_x(LEFT)
        pdf.cell(width - 8, 9, text, align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if record is not None:
        url = proof_url(base_url, record.record_id)
        pdf.image(io.BytesIO(_qr_png(url)), x=LEFT, y=top, w=QR_MM, h=QR_MM, link=url, alt_text="存证记录二维码 / QR code of the letter's record")
        pdf.set_xy(LEFT, top + QR_MM + 1)
        pdf.set_font(FONT, size=8)
        where = f"，日志序号 {record.log_index}" if record.log_index is not None else ""
        pdf.multi_cell(width * 0.6, 4, f"扫码查验本文书的存证记录及其证明：{record.record_id}{where}", align=Align.L, wrapmode=WrapMode.CHAR)
    return bytes(pdf.output())
