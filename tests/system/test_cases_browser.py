"""Cases in a real browser against a real server (issue 15): a major penalty refused without a legal review, reviewed
and passed by a qualified reviewer, decided, disclosed within its deadline on the public page (personal data masked),
seen by the enterprise, drawn in the monthly case-file sample, and scored by a supervisor (failing: a finding). Every page runs under the server's
Content-Security-Policy with no script error (``watched``)."""

from __future__ import annotations

import datetime as dt

import pytest

from protocol.cst import cst_date
from server.jobs.disclosure import sample_case_files
from server.storage.engine import sql
from tests.server.cases_support import seed_case_people
from tests.server.conftest import PLAIN
from tests.support.browser import browser, keep_screenshot  # noqa: F401  (browser is a pytest fixture)
from tests.system.conftest import Stack
from tests.system.harness import read_all, write
from tests.system.test_browser import running, sign_in, watched  # noqa: F401  (running is a pytest fixture)

pytestmark = pytest.mark.system

_ALERTS = sql("SELECT kind FROM alerts WHERE kind = 'major_without_review'")
_DISCLOSURE = sql("SELECT status, deadline, disclosed_on FROM decisions")
_NAME = sql("UPDATE officers SET name = :name WHERE officer_id = :id")


def test_a_major_penalty_from_refusal_to_the_public_page_and_the_sample(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    seed_case_people(str(running.server.db))
    write(running.server.db, lambda tx: [tx.run(_NAME, id=o, name=n) for o, n in (("OFF-SAMR-1", "张明"), ("OFF-SAMR-2", "李华"))])  # names, as registers have
    with watched(browser) as (off_ctx, _), watched(browser) as (rev_ctx, _), watched(browser) as (adm_ctx, _), watched(browser) as (pub_ctx, _), watched(browser) as (sup_ctx, _):
        officer = sign_in(off_ctx, url, "OFF-SAMR-1")
        officer.wait_for_url(f"{url}/officer?lang=zh")
        officer.goto(f"{url}/cases?lang=zh")
        officer.select_option("#new-case select[name=kind]", "penalty")
        officer.fill("#new-case input[name=title]", "张三销售过期食品")
        officer.select_option("#new-case select[name=field]", "food")
        officer.fill("#new-case input[name=credit_code]", PLAIN)
        officer.fill("#new-case input[name=party_name]", "张三")
        officer.fill("#new-case input[name=party_id_no]", "110101199003071234")
        officer.check("#new-case input[name=officer_ids][value='OFF-SAMR-2']")
        officer.click("#new-case button[type=submit]")
        officer.wait_for_url("**/cases?lang=zh&case=*")
        officer.wait_for_selector("#case-state:has-text('立案')")
        officer.click("#act-investigate")
        officer.wait_for_selector("#case-state:has-text('调查取证')")

        officer.fill("#form-decide textarea[name=summary]", "对当事人罚款 20 万元")
        officer.fill("#form-decide input[name=fine_yuan]", "200000")
        officer.click("#form-decide button[type=submit]")
        officer.wait_for_selector("#problem:has-text('重大执法决定须经法制审核')")
        assert "罚款金额超过" in officer.inner_text("#problem")
        assert read_all(running.server.db, _ALERTS) == [("major_without_review",)]

        admin = sign_in(adm_ctx, url, "admin-SAMR")
        admin.wait_for_url(f"{url}/?lang=zh")
        granted = adm_ctx.request.post(f"{url}/api/v1/cases/reviewers", data={"officer_id": "OFF-SAMR-3", "qualification_no": "法审-2026-001"})
        assert granted.status == 201, granted.text()

        officer.fill("#form-review textarea[name=proposal]", "拟罚款 20 万元，事实清楚，证据确凿")
        officer.fill("#form-review input[name=fine_yuan]", "200000")  # the proposal reviewed: the decision stays within it
        officer.click("#form-review button[type=submit]")
        officer.wait_for_selector("#case-state:has-text('法制审核')")
        case_url = officer.url

        reviewer = sign_in(rev_ctx, url, "OFF-SAMR-3")
        reviewer.wait_for_url(f"{url}/officer?lang=zh")
        reviewer.goto(f"{url}/cases?lang=zh")
        reviewer.click("#review-queue a")
        reviewer.wait_for_selector("#form-outcome")
        reviewer.select_option("#form-outcome select[name=outcome]", "passed")
        reviewer.fill("#form-outcome textarea[name=opinion]", "同意承办意见")
        reviewer.click("#form-outcome button[type=submit]")
        reviewer.wait_for_selector(".review-status:has-text('审核通过')")
        assert "200,000" in reviewer.inner_text(".review")  # the reviewer saw the fine proposed

        officer.goto(case_url)
        officer.fill("#form-decide textarea[name=summary]", "对当事人张三罚款 20 万元")
        officer.fill("#form-decide input[name=fine_yuan]", "200000")
        officer.click("#form-decide button[type=submit]")
        officer.wait_for_selector("#case-state:has-text('决定')")
        assert "重大执法决定" in officer.inner_text("#decision")
        officer.click("#act-publish")
        officer.wait_for_selector("#disclosure:has-text('已按时公示')")
        ((status, deadline, disclosed_on),) = read_all(running.server.db, _DISCLOSURE)
        assert status == "disclosed_on_time" and disclosed_on <= deadline
        steps = officer.inner_text("#steps")
        assert "张明" in steps and "OFF-SAMR-1" not in steps  # who took each step, by name (the accounts are officers' ids)
        keep_screenshot(officer, "cases")

        public = pub_ctx.new_page()
        public.goto(f"{url}/public/disclosure?lang=zh")
        public.fill("#search input[name=q]", "餐饮")
        public.click("#search button[type=submit]")
        public.wait_for_selector("#disclosed td:has-text('海淀某餐饮公司')")
        text = public.inner_text("#disclosed")
        assert "张*" in text and "张三" not in text and "110101199003071234" not in text and "200000" in text
        keep_screenshot(public, "public_disclosure")

        enterprise = sign_in(pub_ctx, url, "ent-plain")
        enterprise.wait_for_url(f"{url}/enterprise?lang=zh")
        enterprise.goto(f"{url}/cases?lang=zh")
        assert "销售过期食品" in enterprise.inner_text("#cases")
        enterprise.click("#cases a")
        enterprise.wait_for_selector("#decision")
        assert "20 万元" in enterprise.inner_text("#decision") and enterprise.query_selector("#form-decide") is None

        now_ms = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
        later = int(dt.datetime.combine(cst_date(now_ms).replace(day=1) + dt.timedelta(days=40), dt.time(9)).timestamp() * 1000)  # next month
        assert len(write(running.server.db, lambda tx: sample_case_files(tx, later))) == 1
        officer.reload()
        officer.wait_for_selector("#sampled")

        sup = sign_in(sup_ctx, url, "sup")  # the case-file review (案卷评查) of the sampled case
        sup.wait_for_url(f"{url}/?lang=zh")
        sup.goto(f"{url}/cases?lang=zh")
        sup.fill("#case-files input[name='scores.evidence']", "10")
        sup.fill("#case-files input[name='scores.procedure']", "15")  # 75 of 100: fails
        sup.fill("#case-files input[name=notes]", "证据未附检验报告")
        sup.click("#case-files button[type=submit]")
        sup.wait_for_selector("#case-files .file-result:has-text('不合格')")
        findings = sup_ctx.request.get(f"{url}/api/v1/supervision/findings").json()
        assert [f["source"] for f in findings] == ["case_review"]
