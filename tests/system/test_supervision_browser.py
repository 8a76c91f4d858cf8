"""Supervision in a real browser against a real server: an alert on the dashboard becomes a finding, a letter, the
agency's report and an accepted rectification; another letter runs past its deadline and a decision letter follows.
Every page runs under the server's Content-Security-Policy with no script error (``watched``)."""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest

from server.storage.engine import sql
from server.supervision.workflow import check_deadlines
from tests.server.conftest import PLAIN
from tests.support.browser import DOCS_DIR, browser, keep_screenshot, refreshing_docs  # noqa: F401  (browser is a pytest fixture)
from tests.system.conftest import Stack
from tests.system.harness import read_all, write
from tests.system.test_browser import running, sign_in, watched  # noqa: F401  (running is a pytest fixture)

pytestmark = pytest.mark.system

_ALERT = sql(
    "INSERT INTO alerts(created_ms, kind, severity, agency_id, credit_code, ref, message_zh, message_en)"
    " VALUES (:now, 'repeat_inspection', 'info', 'SAMR', :code, 'x', '市场监管局 30 日内第三次检查该企业', 'third inspection in 30 days') RETURNING id"
)
_DEADLINES = sql("SELECT letter_id, deadline FROM letters WHERE status = 'issued'")


def issue(page, finding_id: str, act: str, deadline_days: int = 10) -> None:  # type: ignore[no-untyped-def]
    page.click(f"tr[data-finding='{finding_id}'] button[data-act='{act}']")
    page.fill("#issuer", "某市司法局")
    page.fill("#facts", "该局对同一企业 30 日内检查三次，未说明例外依据。")
    page.fill("#basis", "《北京市行政执法监督办法》第二十条")
    page.fill("#requirements", "查明原因，依法整改。")
    page.fill("#deadline-days", str(deadline_days))
    page.click("#act-submit")


def test_from_an_alert_to_an_accepted_report_and_from_a_missed_deadline_to_a_decision(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    now = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    alert_id = write(running.server.db, lambda tx: tx.scalar(_ALERT, now=now, code=PLAIN))
    with watched(browser) as (sup_ctx, _), watched(browser) as (admin_ctx, _):
        sup = sign_in(sup_ctx, url, "sup")
        sup.wait_for_url(f"{url}/?lang=zh")
        sup.click(f"a.to-finding[href*='alert={alert_id}']", timeout=15_000)  # the dashboard's alert, live
        sup.wait_for_selector("#finding-from-alert")
        assert "第三次检查" in sup.input_value("#finding-reason") and sup.input_value("#finding-agency") == "SAMR"
        sup.click("#finding-form button[type=submit]")
        sup.wait_for_url(f"{url}/supervision?lang=zh")  # the alert is left out of the address once used
        row = sup.wait_for_selector("#findings tr[data-finding]")
        assert sup.query_selector("#finding-from-alert") is None
        finding_id = row.get_attribute("data-finding")
        assert "市场监管局" in row.inner_text() and "告警" in row.inner_text()
        issue(sup, finding_id, "opinion")
        sup.wait_for_selector("#letters td.state:has-text('已送达，待整改')")
        assert "行政执法监督意见书" in sup.inner_text("#letters") and "第1号" in sup.inner_text("#letters")
        pdf = sup_ctx.request.get(url + sup.get_attribute("#letters a.pdf", "href"))
        assert pdf.status == 200 and pdf.body().startswith(b"%PDF-")
        if refreshing_docs():  # the README shows the letter's first page (scripts/screenshots.sh)
            subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", "-", str(DOCS_DIR / "letter")], input=pdf.body(), check=True)

        admin = sign_in(admin_ctx, url, "admin-SAMR")
        admin.wait_for_url(f"{url}/?lang=zh")
        admin.click("#supervision-link")
        admin.click("#letters button[data-act='reply']")
        admin.fill("#text", "已约谈执法人员，建立检查前查询制度。")
        admin.set_input_files("#files", files=[{"name": "整改报告.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n% report\n"}])
        admin.click("#act-submit")
        admin.wait_for_selector("#letters td.state:has-text('已报送整改情况')")

        letter_id = admin.get_attribute("#letters tr[data-letter]", "data-letter")
        (attachment,) = [x for x in admin_ctx.request.get(f"{url}/api/v1/supervision/letters/{letter_id}").json()["attachments"]]
        assert attachment["filename"] == "整改报告.pdf" and attachment["content_type"] == "application/pdf"
        sup.reload()
        sup.click("#letters button[data-act='accept']")
        sup.wait_for_selector("#letters td.state:has-text('整改已认可')")
        keep_screenshot(sup, "supervision")

        # A second finding by hand; its letter runs past the deadline (the daily job, run for the day after it).
        sup.fill("#finding-reason", "3 项行政处罚决定超过 7 个工作日未公示")
        sup.click("#finding-form button[type=submit]")
        sup.wait_for_selector("#findings tr[data-finding]:has-text('未公示')")
        second = sup.get_attribute("#findings tr[data-finding]:has-text('未公示')", "data-finding")
        issue(sup, second, "opinion", deadline_days=3)
        sup.wait_for_selector("#letters td.state:has-text('已送达，待整改')")
        ((_, deadline),) = read_all(running.server.db, _DEADLINES)
        after = dt.datetime.combine(dt.date.fromisoformat(deadline) + dt.timedelta(days=1), dt.time(9), dt.timezone(dt.timedelta(hours=8)))
        assert write(running.server.db, lambda tx: check_deadlines(tx, int(after.timestamp() * 1000))) == {"overdue": 1}
        sup.reload()
        sup.wait_for_selector("#letters td.state:has-text('逾期未报送')")
        issue(sup, second, "decision")
        sup.wait_for_selector("#letters tr:has-text('行政执法监督决定书')")
        en = sup_ctx.new_page()
        en.goto(f"{url}/supervision?lang=en")
        assert "Supervision decision letter" in en.inner_text("#letters") and "rectification accepted" in en.inner_text("#letters")
