"""server/storage/exceptions.py on both backends: register lookups, the exception register and the review queue."""

from __future__ import annotations

import pytest

from server.storage import exceptions as ex
from server.storage.engine import Storage, sql
from tests.server.conftest import DAY_MS, GOOD, NOW_MS, PLAIN, seed

_INSPECTION = sql(
    """INSERT INTO inspections(inspection_id, credit_code, region, lead_agency_id, field, status, opened_ms, exception_kind, exception_ref)
       VALUES (:id, :code, '110108', :agency, 'food', 'ended', :at, :kind, :ref)"""
)
_PART = sql(
    """INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, joined_ms, ended_ms, result)
       VALUES (:id, :officer, :agency, :field, :at, :ended, :result)"""
)


def entry(reference: str = "交〔2026〕1号", credit_code: str = GOOD, **kw: object) -> ex.NewBasis:
    values: dict[str, object] = dict(
        kind="superior_assignment", reference=reference, credit_code=credit_code, agency_id=None, field=None, issued_by="市局",
        summary="", valid_from_ms=NOW_MS, valid_to_ms=NOW_MS + DAY_MS,
    )  # fmt: skip
    return ex.NewBasis(**{**values, **kw})  # type: ignore[arg-type]


@pytest.fixture
def seeded(store: Storage) -> Storage:
    store.write(seed)
    return store


def test_register_lookups(seeded: Storage) -> None:
    with seeded.writing() as tx:
        tx.run(_INSPECTION, id="I-1", code=GOOD, agency="SAMR", at=NOW_MS, kind="complaint", ref="12345-2026-001")
        tx.run(_PART, id="I-1", officer="OFF-SAMR-1", agency="SAMR", field="food", at=NOW_MS, ended=NOW_MS + 10, result="rectification_ordered")
        tx.run(_PART, id="I-1", officer="OFF-SAMR-2", agency="SAMR", field="food", at=NOW_MS, ended=NOW_MS + 20, result="rectification_ordered")
        tx.run(_PART, id="I-1", officer="OFF-FIRE-1", agency="FIRE", field="fire", at=NOW_MS, ended=NOW_MS + 30, result="no_violation")
    with seeded.reading() as tx:
        assert ex.complaint(tx, "12345-2026-001") == (GOOD, None, "food")
        assert ex.complaint(tx, "12345-2026-002").closed_ms == NOW_MS - DAY_MS  # type: ignore[union-attr]
        assert ex.complaint(tx, "no-such") is None
        plan = ex.plan(tx, "PLAN-2026-Q4")
        assert plan is not None and (plan.agency_id, plan.kind, plan.field) == ("SAMR", "random_draw", "food")
        assert ex.plan(tx, "PLAN-2026-q4") is None  # exact: look-alikes are the rule module's business
        assert ex.plan_names(tx, "PLAN-2026-Q4", GOOD) and not ex.plan_names(tx, "PLAN-2026-Q4", PLAIN)
        assert ex.inspected_enterprise(tx, "I-1") == GOOD and ex.inspected_enterprise(tx, "I-2") is None
        assert ex.rectification_ordered_ms(tx, "I-1", "SAMR", "food") == NOW_MS + 20  # the latest part that ordered it
        assert ex.rectification_ordered_ms(tx, "I-1", "SAMR", "") == NOW_MS + 20  # any field
        assert ex.rectification_ordered_ms(tx, "I-1", "SAMR", "fire") is None
        assert ex.rectification_ordered_ms(tx, "I-1", "FIRE", "") is None  # FIRE ordered nothing
        assert ex.basis_used(tx, GOOD, "SAMR", "complaint", "12345-2026-001")
        assert not ex.basis_used(tx, GOOD, "FIRE", "complaint", "12345-2026-001")  # per agency
        assert not ex.basis_used(tx, GOOD, "SAMR", "complaint", "12345-2026-00l")
        assert ex.enterprise_known(tx, GOOD) and not ex.enterprise_known(tx, "X")
        assert ex.agency_known(tx, "FIRE") and not ex.agency_known(tx, "fire")
        assert ex.field_known(tx, "fire") and not ex.field_known(tx, "FIRE")
        assert ex.regions(tx, "SAMR", GOOD) == ("110108", "110108") and ex.regions(tx, "SAMR", "X") is None


def test_the_register_adds_once_lists_and_withdraws(seeded: Storage) -> None:
    with seeded.writing() as tx:
        assert ex.add_basis(tx, entry(agency_id="SAMR", field="food"), "sup", NOW_MS)
        assert not ex.add_basis(tx, entry(agency_id="FIRE"), "sup", NOW_MS + 1)  # the same kind, reference, enterprise
        assert ex.add_basis(tx, entry(credit_code=PLAIN), "admin-FIRE", NOW_MS + 2)  # any agency
        assert ex.add_basis(tx, entry("交〔2026〕2号", agency_id="FIRE"), "admin-FIRE", NOW_MS + 3)
        assert ex.add_basis(tx, entry("交〔2026〕1号 ", kind="major_risk"), "sup", NOW_MS + 4)
    with seeded.reading() as tx:
        view = ex.get_basis(tx, "superior_assignment", "交〔2026〕1号", GOOD)
        assert view is not None and (view.enterprise_name, view.agency_id, view.field, view.created_by) == ("守信示范企业", "SAMR", "food", "sup")
        assert ex.get_basis(tx, "major_risk", "交〔2026〕1号", GOOD) is None
        assert [b.credit_code for b in ex.bases_named(tx, "superior_assignment", "交〔2026〕1号")] == sorted([GOOD, PLAIN])
        assert [b.reference for b in ex.bases_of_kind(tx, "major_risk")] == ["交〔2026〕1号 "]
        every = ex.list_bases(tx, agency_id=None, credit_code=None, kind=None, limit=10)
        assert [b.created_ms for b in every] == [NOW_MS + 4, NOW_MS + 3, NOW_MS + 2, NOW_MS]  # newest first
        samr = ex.list_bases(tx, agency_id="SAMR", credit_code=None, kind=None, limit=10)
        assert [(b.reference, b.credit_code) for b in samr] == [("交〔2026〕1号 ", GOOD), ("交〔2026〕1号", PLAIN), ("交〔2026〕1号", GOOD)]
        assert [b.kind for b in ex.list_bases(tx, agency_id=None, credit_code=GOOD, kind="major_risk", limit=10)] == ["major_risk"]
        assert len(ex.list_bases(tx, agency_id=None, credit_code=None, kind=None, limit=2)) == 2
    with seeded.writing() as tx:
        assert ex.withdraw_basis(tx, "superior_assignment", "交〔2026〕1号", GOOD, "sup", NOW_MS + 9)
        assert not ex.withdraw_basis(tx, "superior_assignment", "交〔2026〕1号", GOOD, "sup", NOW_MS + 10)  # already
        assert not ex.withdraw_basis(tx, "superior_assignment", "no-such", GOOD, "sup", NOW_MS + 10)
        view = ex.get_basis(tx, "superior_assignment", "交〔2026〕1号", GOOD)
        assert view is not None and (view.withdrawn_ms, view.withdrawn_by) == (NOW_MS + 9, "sup")


def test_the_review_queue(seeded: Storage) -> None:
    with seeded.writing() as tx:
        for n, (officer, agency) in enumerate([("OFF-SAMR-1", "SAMR"), ("OFF-SAMR-1", "SAMR"), ("OFF-FIRE-1", "FIRE"), ("OFF-SAMR-2", None)]):
            ex.queue_review(
                tx, scan_id=f"S-{n}", inspection_id=f"I-{n}" if agency else None, kind="major_risk", reference=f"R-{n}", credit_code=GOOD,
                officer_id=officer, agency_id=agency, problem="未登记", now_ms=NOW_MS + n,
            )  # fmt: skip
        ex.queue_review(
            tx, scan_id="S-0", inspection_id="other", kind="complaint", reference="x", credit_code=PLAIN, officer_id="OFF-FIRE-1",
            agency_id="FIRE", problem="replayed", now_ms=NOW_MS + 99,
        )  # fmt: skip  # once per scan: the first stands
        assert ex.pending_reviews_of(tx, "OFF-SAMR-1") == 2
        assert ex.decide_review(tx, "S-1", "rejected", "sup", "不实", NOW_MS + 50)
        assert not ex.decide_review(tx, "S-1", "confirmed", "sup", "", NOW_MS + 51)  # a verdict stands
        assert not ex.decide_review(tx, "no-such", "confirmed", "sup", "", NOW_MS + 51)
        assert ex.decide_review(tx, "S-2", "confirmed", "sup", "", NOW_MS + 52)
    with seeded.reading() as tx:
        first = ex.get_review(tx, "S-0")
        assert first is not None and (first.inspection_id, first.problem, first.enterprise_name, first.status) == ("I-0", "未登记", "守信示范企业", "pending")
        rejected = ex.get_review(tx, "S-1")
        assert rejected is not None and (rejected.status, rejected.reviewed_by, rejected.reviewed_ms, rejected.note) == ("rejected", "sup", NOW_MS + 50, "不实")
        assert ex.pending_reviews_of(tx, "OFF-SAMR-1") == 1
        pending = ex.list_reviews(tx, agency_id=None, status="pending", oldest_first=True, limit=10)
        assert [r.scan_id for r in pending] == ["S-0", "S-3"]
        assert [r.scan_id for r in ex.list_reviews(tx, agency_id=None, status=None, oldest_first=False, limit=10)] == ["S-3", "S-2", "S-1", "S-0"]
        assert [r.scan_id for r in ex.list_reviews(tx, agency_id="SAMR", status=None, oldest_first=False, limit=1)] == ["S-1"]
        assert ex.review_counts(tx, agency_id=None, since_ms=NOW_MS, until_ms=NOW_MS + 100) == {"pending": 2, "rejected": 1, "confirmed": 1}
        assert ex.review_counts(tx, agency_id="SAMR", since_ms=NOW_MS + 1, until_ms=NOW_MS + 100) == {"rejected": 1}
        assert ex.review_counts(tx, agency_id="NOPE", since_ms=0, until_ms=NOW_MS + 100) == {}
