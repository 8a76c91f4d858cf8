"""Supervision letters as PDF, on both backends: the text read back with pdftotext (title, number, addressee, facts,
deadline, issuing body), the QR code read back from the page rendered with pdftoppm (it leads to the letter's record
and its inclusion proof, which the server then gives), a long letter over several pages, and each role's reach."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import zxingcpp
from PIL import Image

from server.storage.engine import storage_for
from server.supervision import documents
from server.supervision.documents import FontMissing, date_zh
from server.supervision.workflow import check_deadlines
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import Api
from tests.server.test_supervision import LETTER, SUP, finding, letter

pytestmark = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None, reason="poppler-utils (pdftotext, pdftoppm) is not installed: scripts/setup.sh installs it"
)


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True, timeout=60).stdout.decode()


def flat(text: str) -> str:
    """Without white space: pdftotext breaks wrapped lines where the PDF does."""
    return "".join(text.split())


def pages(pdf: bytes) -> int:
    return pdf.count(b"/Type /Page\n") or pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")


def qr_codes(pdf: bytes, tmp_path: Path) -> list[str]:
    """The QR codes on the PDF's pages, rendered at 150 dpi (about as a phone photographs a printout)."""
    (tmp_path / "letter.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(tmp_path / "letter.pdf"), str(tmp_path / "page")], check=True, timeout=120)
    return [b.text for png in sorted(tmp_path.glob("page*.png")) for b in zxingcpp.read_barcodes(Image.open(png))]


def get_pdf(api: Api, letter_id: str) -> Any:
    return api.get(f"{SUP}/letters/{letter_id}/pdf")


def test_a_letter_prints_with_its_text_and_a_qr_code_to_its_record_and_proof(api: Api, tmp_path: Path) -> None:
    f = finding(api)
    view = letter(api, f["finding_id"])
    r = get_pdf(api, view["letter_id"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF-")
    disposition = r.headers["content-disposition"]
    assert disposition.isascii() and f'filename="supervision-letter-{view["letter_id"]}.pdf"' in disposition
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == f"{view['title']}{view['number']}.pdf"
    text = flat(pdf_text(r.content, tmp_path))
    for needle in ("行政执法监督意见书", view["number"], "市场监管局：", LETTER["facts"], LETTER["basis"], LETTER["requirements"], date_zh(view["deadline"]), LETTER["issuer"], date_zh(view["issued_on"])):
        assert flat(needle) in text, needle
    issued = next(s for s in view["steps"] if s["kind"] == "letter.issued")
    url = f"http://testserver.local/api/v1/evidence/proof/{issued['record_id']}"
    assert qr_codes(r.content, tmp_path) == [url]
    assert issued["record_id"] in text
    proof = api.get(url.removeprefix("http://testserver.local"))
    assert proof.status_code == 200, proof.text
    assert proof.json()["log_index"] == issued["log_index"]
    # the agency's administrator prints it too, and gets the same document
    again = get_pdf(api.as_("admin-SAMR"), view["letter_id"])
    assert again.status_code == 200 and flat(pdf_text(again.content, tmp_path)) == text


def test_a_long_letter_prints_over_several_pages(api: Api, tmp_path: Path) -> None:
    facts = ("该局于二〇二六年十一月三日对同一企业重复检查，未说明理由；检查记录不完整，执法记录仪未全程开启。" * 100)[:4000]
    view = letter(api, finding(api)["finding_id"], facts=facts)
    r = get_pdf(api, view["letter_id"])
    assert r.status_code == 200 and r.content.startswith(b"%PDF-")
    assert pages(r.content) >= 3
    text = re.sub(r"—\d+—", "", flat(pdf_text(r.content, tmp_path)))  # without the page numbers between pages
    assert flat(facts) in text and date_zh(view["deadline"]) in text and LETTER["issuer"] in text
    assert len(qr_codes(r.content, tmp_path)) == 1  # once, beside the issuing body at the end


def test_a_decision_letter_prints_under_its_own_title(api: Api, seeded_url: str, tmp_path: Path) -> None:
    f = finding(api)
    first = letter(api, f["finding_id"], deadline_days=1)
    later = dt.datetime.combine(dt.date.fromisoformat(first["deadline"]) + dt.timedelta(days=1), dt.time(9), dt.timezone(dt.timedelta(hours=8)))
    assert storage_for(seeded_url).write(lambda tx: check_deadlines(tx, int(later.timestamp() * 1000))) == {"overdue": 1}
    decision = letter(api, f["finding_id"], kind="decision")
    text = flat(pdf_text(get_pdf(api, decision["letter_id"]).content, tmp_path))
    assert "行政执法监督决定书" in text and "行政执法监督意见书" in text and decision["number"] in text  # it cites the opinion letter
    assert "监督决定" in text and flat(LETTER["requirements"]) in text


def test_each_role_reaches_only_its_own_agency_s_letters(api: Api) -> None:
    own = letter(api, finding(api)["finding_id"])
    assert get_pdf(api.as_("admin-FIRE"), own["letter_id"]).status_code == 404  # another agency's: not found
    assert get_pdf(api, "L2026-000000000000").status_code == 404
    for user in ("OFF-SAMR-1", "ent-plain"):
        assert get_pdf(api.as_(user), own["letter_id"]).status_code == 403
    assert api.client.get(f"{SUP}/letters/{own['letter_id']}/pdf").status_code == 401


def test_a_missing_font_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    documents.cjk_font.cache_clear()
    monkeypatch.setattr(documents, "FONT_PATHS", (str(tmp_path / "none.ttc"),))
    monkeypatch.setattr(documents, "FONT_FAMILIES", ("No Such Font Family",))
    try:
        with pytest.raises(FontMissing, match="fonts-wqy-microhei"):
            documents.cjk_font()
    finally:
        documents.cjk_font.cache_clear()
