"""The demo's cases (server/cases/demo.py ``seed_cases``) on both backends: six cases in several states, every step in
the evidence log, a second seeding adds nothing, and the disclosed decision shows on the public page masked."""

from __future__ import annotations

import time

from server.cases import decide
from server.cases.demo import seed_cases
from server.demo import AGENCIES, FIELDS, _code
from server.evidence.verify import verify
from server.storage import cases as rows
from server.storage import registers
from server.storage.engine import storage_for
from tests.server.conftest import password_hash


def test_the_demo_seeds_cases_in_several_states(db_url: str) -> None:
    now = int(time.time() * 1000)
    codes = [_code(i + 1) for i in range(12)]
    with storage_for(db_url).writing() as tx:
        registers.add_fields(tx, [(k, zh, en) for k, (zh, en) in FIELDS.items()])
        registers.add_agencies(tx, [(k, zh, en, "110108", f) for k, (zh, en, f) in AGENCIES.items()])
        registers.add_enterprises(tx, [(c, f"北京某企业{i:03d}有限公司", "", "110108", "low", "A") for i, c in enumerate(codes)])
        assert seed_cases(tx, codes, now, password_hash=password_hash("demo")) == 6
        assert seed_cases(tx, codes, now, password_hash=password_hash("demo")) == 0
    with storage_for(db_url).reading() as tx:
        states = sorted(c["state"] for c in rows.cases(tx, agency_id=None, credit_code=None, state=None, limit=100))
        public = decide.public_decisions(tx, agency_id=None, q=None, lang="zh", limit=10)
        by_name = decide.public_decisions(tx, agency_id=None, q="某企业", lang="zh", limit=10)
        wildcards = [decide.public_decisions(tx, agency_id=None, q=q, lang="zh", limit=10) for q in ("%", "企业_", "!")]
        report = verify(tx, "00" * 32)
    assert states == ["closed", "decided", "filed", "investigating", "review", "transferring"]
    assert {p.name for d in public for p in d.parties if p.kind == "individual"} == {"赵**"}
    assert "赵小明" not in str(public) and "110108198805061234" not in str(public)
    assert not report.problems
    assert public and by_name == public  # part of the enterprise's name finds its decisions
    assert wildcards == [[], [], []]  # % and _ in a search are letters, not LIKE's wildcards
