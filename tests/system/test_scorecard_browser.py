"""The agency scorecard in a real browser against a real server, under the Content-Security-Policy with no script error
(``watched``): from the header's link, a custom period, the chart and the table in ranking order, a preset, the CSV
export; an agency's administrator sees the ranking and only their own details; the English page."""

from __future__ import annotations

import pytest

from tests.server.test_scorecard import FIRST, LAST, seed_scorecard
from tests.support.browser import browser, keep_screenshot  # noqa: F401  (browser is a pytest fixture)
from tests.system.conftest import Stack
from tests.system.test_browser import running, sign_in, watched  # noqa: F401  (running is a pytest fixture)

pytestmark = pytest.mark.system


def test_the_scorecard_page(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    seed_scorecard(str(running.server.db))
    with watched(browser) as (sup_ctx, _), watched(browser) as (admin_ctx, _):
        sup = sign_in(sup_ctx, url, "sup")
        sup.wait_for_url(f"{url}/?lang=zh")
        sup.click("#scorecard-link")
        sup.wait_for_selector("#scorecard")
        sup.fill("#from", FIRST.isoformat())
        sup.fill("#to", LAST.isoformat())
        sup.click("#custom-period button[type=submit]")
        sup.wait_for_selector(f"#period-shown:has-text('{FIRST.isoformat()}')")
        rows = [r.inner_text() for r in sup.query_selector_all("#scorecard tr.agency-row")]
        assert [r.split("\t")[:3] for r in rows][:2] == [["1", "消防救援支队", "64.3"], ["2", "市场监管局", "41.0"]]
        assert "生态环境局" in rows[2] and "无数据，不排名" in rows[2]
        assert len(sup.query_selector_all("#chart rect")) == 3 and "64.3" in (sup.text_content("#chart") or "")
        csv = sup_ctx.request.get(url + sup.get_attribute("#export", "href"))
        assert csv.status == 200 and csv.body().startswith("\ufeff排名,机关,综合得分".encode())
        keep_screenshot(sup, "scorecard")
        sup.click("a[data-preset='last_month']")
        sup.wait_for_selector("a.pill[data-preset='last_month']")

        admin = sign_in(admin_ctx, url, "admin-SAMR")
        admin.wait_for_url(f"{url}/?lang=zh")
        admin.goto(f"{url}/scorecard?preset=custom&from={FIRST}&to={LAST}")
        assert admin.inner_text("#scorecard").count("仅可查看本机关明细") == 2
        en = admin_ctx.new_page()
        en.goto(f"{url}/scorecard?preset=custom&from={FIRST}&to={LAST}&lang=en")
        assert "Fire rescue" in en.inner_text("#scorecard") and "Agency scorecard" in en.inner_text("main")
