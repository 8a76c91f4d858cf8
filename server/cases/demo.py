"""Demo cases (issue 15), seeded by server/demo.py: ``seed_cases(tx, codes, now, password_hash=...)``.

Adds three officers of the market-regulation bureau with sign-in accounts (two who handle cases, one qualified legal
reviewer; the password is the demo's), and cases in several states: just filed, under investigation, awaiting legal
review (a major fine), decided after a passed review and disclosed, closed, and one being transferred to the ecology
bureau. Every step goes through the same rules as the API, so each is in the evidence log. Seeding twice adds nothing.
"""

from __future__ import annotations

from server.cases import decide, review, transfers, workflow
from server.cases.forms import CHECKLIST, CaseIn, DecisionIn, ItemFinding, OutcomeIn, PartyIn, ReviewerIn, ReviewIn, TransferIn
from server.cases.policy import CasesPolicy
from server.console.auth import Principal, add_user
from server.storage import cases as rows
from server.storage import registers
from server.storage import users as user_store
from server.storage.engine import Tx

DAY_MS = 86_400_000
AGENCY = "market-regulation"
OFFICERS = (("OFF-MR-1", "张明"), ("OFF-MR-2", "李华"), ("OFF-MR-3", "王审"))


def seed_cases(tx: Tx, codes: list[str], now: int, *, password_hash: str, policy: CasesPolicy | None = None) -> int:
    """Seed the demo's cases (``codes``: the demo's enterprises, at least 12); returns how many cases were made."""
    if rows.cases(tx, agency_id=None, credit_code=None, state=None, limit=1):
        return 0
    policy = policy or CasesPolicy()
    for officer_id, name in OFFICERS:
        if not rows.officer_facts(tx, [officer_id]):
            registers.add_officer(
                tx, officer_id=officer_id, name=name, agency_id=AGENCY, credential_no=f"京海市监{officer_id[-1]}", fields=["food_safety", "product_quality"],
                valid_from_ms=now - 365 * DAY_MS, valid_to_ms=now + 365 * DAY_MS,
            )  # fmt: skip
        if not user_store.user_exists(tx, officer_id):
            add_user(tx, officer_id, "unused-demo-password", "officer", agency_id=AGENCY, officer_id=officer_id, password_hash=password_hash)
    one = Principal(username="OFF-MR-1", role="officer", agency_id=AGENCY, officer_id="OFF-MR-1")
    reviewer = Principal(username="OFF-MR-3", role="officer", agency_id=AGENCY, officer_id="OFF-MR-3")
    admin = Principal(username=f"admin-{AGENCY}", role="agency_admin", agency_id=AGENCY)
    review.grant(tx, ReviewerIn(officer_id="OFF-MR-3", qualification_no="法审-2026-001"), admin, now - 30 * DAY_MS)
    clean = {k: ItemFinding(ok=True, note="") for k in CHECKLIST}

    def opened(title: str, code: str, days_ago: int, **kw: object) -> str:
        data = CaseIn(kind="penalty", title=title, field="food_safety", credit_code=code, officer_ids=["OFF-MR-1", "OFF-MR-2"], **kw)  # type: ignore[arg-type]
        return workflow.open_case(tx, data, one, now - days_ago * DAY_MS, policy).case_id

    def step(case_id: str, to: str, days_ago: float) -> None:
        workflow.transition(tx, case_id, to, "", one, now - int(days_ago * DAY_MS))

    opened("超范围经营食品", codes[5], 1)
    investigating = opened("未按规定公示食品经营许可证", codes[6], 6)
    step(investigating, "investigating", 5)
    major = opened("销售超过保质期的食品（货值较大）", codes[7], 12)
    step(major, "investigating", 11)
    review.submit(tx, major, ReviewIn(proposal="拟没收违法所得并罚款 8 万元", fine_yuan=80_000, measures=["confiscation"]), one, now - 2 * DAY_MS, policy)
    decided = opened("经营标签不符合规定的预包装食品", codes[8], 20, parties=[PartyIn(kind="individual", name="赵小明", id_no="110108198805061234")])
    step(decided, "investigating", 19)
    review.submit(tx, decided, ReviewIn(proposal="拟罚款 6 万元", fine_yuan=60_000), one, now - 8 * DAY_MS, policy)
    review.outcome(tx, decided, f"{decided}-R1", OutcomeIn(checklist=clean, outcome="passed", opinion="事实清楚，证据充分，同意"), reviewer, now - 6 * DAY_MS)
    decide.decide(tx, decided, DecisionIn(summary="对赵小明经营的门店罚款 6 万元", fine_yuan=60_000), one, now - 5 * DAY_MS, policy)
    decide.publish(tx, decided, one, now - 3 * DAY_MS)
    closed = opened("未建立进货查验记录", codes[9], 40)
    step(closed, "investigating", 39)
    decide.decide(tx, closed, DecisionIn(summary="警告，责令改正", measures=["warning"]), one, now - 30 * DAY_MS, policy)
    decide.publish(tx, closed, one, now - 29 * DAY_MS)
    for to, days in (("served", 28), ("executed", 27), ("closed", 26)):
        step(closed, to, days)
    moving = opened("生产车间废水直排", codes[10], 4)
    transfers.send(tx, moving, TransferIn(kind="transfer", to_agency="ecology", reason="属生态环境部门管辖"), one, now - 3 * DAY_MS)
    return 6
