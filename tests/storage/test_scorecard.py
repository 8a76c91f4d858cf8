"""server/storage/scorecard.py on both backends: the period's bounds of each count (a decision by its CST day, a review,
a finding, a letter and a rating by their instant, the end excluded), reviews not yet made left out, plain ints where PostgreSQL
would give Decimal."""

from __future__ import annotations

from server.storage import scorecard as stored
from server.storage.engine import Storage, sql
from tests.server.conftest import seed

_DECISION = sql("INSERT INTO decisions(decision_id, agency_id, kind, decided_on, deadline, status) VALUES (:id, :agency, 'penalty', :on, :on, :status)")
_SAMPLE = sql("INSERT INTO samples(sample_id, agency_id, period, seed, drawn_ms, population) VALUES ('S', 'SAMR', '2026-01', 's', 0, 3)")
_ITEM = sql("INSERT INTO sample_items(sample_id, decision_id, result, reviewed_ms) VALUES ('S', :d, :result, :at)")
_FINDING = sql("""
    INSERT INTO findings(finding_id, year, seq, agency_id, source, reason, refs, opened_by, opened_ms, status)
    VALUES (:id, 2026, :seq, :agency, 'manual', 'r', '[]', 'sup', :at, 'open')
""")
_LETTER = sql("""
    INSERT INTO letters(letter_id, kind, issuer, year, number, finding_id, agency_id, facts, basis, requirements, deadline_days,
                        issued_on, deadline, issued_by, issued_ms, status, replied_ms)
    VALUES (:id, :kind, 'x', 2026, :n, 'F', :agency, 'f', 'b', 'r', 5, '2026-01-05', '2026-01-12', 'sup', :at, :status, :replied)
""")
_RATING = sql("""
    INSERT INTO ratings(inspection_id, credit_code, lead_agency_id, score, comment, rated_by, rated_ms) VALUES (:id, 'c', :agency, :score, '', 'e', :at)
""")
FROM, TO = 1_000, 2_000


def test_counts_within_the_period(store: Storage) -> None:
    with store.writing() as tx:
        seed(tx)
        for n, (on, agency, status) in enumerate(
            [("2026-01-01", "SAMR", "disclosed_on_time"), ("2026-01-31", "SAMR", "disclosed_late"), ("2026-01-15", "SAMR", "missed"),
             ("2026-01-15", "SAMR", "pending"), ("2026-02-01", "SAMR", "disclosed_on_time"), ("2025-12-31", "FIRE", "missed"),
             ("2026-01-02", "FIRE", "disclosed_on_time")]
        ):  # fmt: skip
            tx.run(_DECISION, id=f"D{n}", agency=agency, on=on, status=status)
        tx.run(_SAMPLE)
        for d, result, at in [("D0", "pass", FROM), ("D1", "fail", TO - 1), ("D2", "pass", TO), ("D3", None, None)]:
            tx.run(_ITEM, d=d, result=result, at=at)
        for n, (agency, at) in enumerate([("SAMR", FROM), ("SAMR", TO - 1), ("FIRE", TO), ("FIRE", FROM - 1), ("FIRE", 1500)], 1):
            tx.run(_FINDING, id=f"F{n}", seq=n, agency=agency, at=at)
        for n, (kind, agency, at, status, replied) in enumerate(
            [("opinion", "SAMR", FROM, "accepted", 1_700), ("decision", "SAMR", 1_900, "issued", None), ("opinion", "FIRE", TO, "issued", None)], 1
        ):  # fmt: skip
            tx.run(_LETTER, id=f"L{n}", n=n, kind=kind, agency=agency, at=at, status=status, replied=replied)
        for n, (agency, score, at) in enumerate([("SAMR", 5, FROM), ("SAMR", 2, TO - 1), ("SAMR", 1, TO), ("FIRE", 3, FROM - 1)]):
            tx.run(_RATING, id=f"I{n}", agency=agency, score=score, at=at)
    with store.reading() as tx:
        assert stored.disclosure_counts(tx, "2026-01-01", "2026-02-01") == {"SAMR": (1, 3), "FIRE": (1, 1)}
        assert stored.review_counts(tx, FROM, TO) == {"SAMR": (2, 1)}
        assert stored.finding_counts(tx, FROM, TO) == {"SAMR": 2, "FIRE": 1}
        assert stored.letters_issued(tx, FROM, TO) == [("SAMR", "opinion", "accepted", "2026-01-12", 1_700), ("SAMR", "decision", "issued", "2026-01-12", None)]
        assert stored.rating_counts(tx, FROM, TO) == {"SAMR": (2, 7)}
        assert [a for a, _, _ in stored.agencies(tx)] == ["FIRE", "SAMR"]
        counts = stored.disclosure_counts(tx, "2026-01-01", "2026-02-01")["SAMR"] + stored.review_counts(tx, FROM, TO)["SAMR"] + stored.rating_counts(tx, FROM, TO)["SAMR"]
        assert all(type(x) is int for x in counts)
