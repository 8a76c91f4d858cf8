"""server/storage/codes.py on both backends: keys, issued codes, revocations, and the responsibility lookup."""

from __future__ import annotations

import pytest

from server.storage import codes
from server.storage.engine import Storage, sql
from tests.server.conftest import DAY_MS, GOOD, NOW_MS, PLAIN, UNREGISTERED, seed

_INSPECTION = sql(
    """INSERT INTO inspections(inspection_id, credit_code, region, lead_agency_id, field, status, opened_ms)
       VALUES (:id, :code, '110108', :agency, 'food', 'ended', :at)"""
)
_PART = sql(
    """INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, joined_ms)
       VALUES (:id, 'X', :agency, 'food', :at)"""
)
_AGENCY = sql("INSERT INTO agencies(agency_id, name, name_en, region, fields) VALUES (:id, :name, :en, :region, '[]')")


@pytest.fixture
def seeded(store: Storage) -> Storage:
    store.write(seed)
    return store


def test_a_key_is_registered_once_and_retired_keys_do_not_verify(store: Storage) -> None:
    with store.writing() as tx:
        codes.add_key(tx, "K1", "aa" * 32, NOW_MS)
        codes.add_key(tx, "K1", "bb" * 32, NOW_MS + 1)  # a second start: the first registration stands
        codes.add_key(tx, "K0", "cc" * 32, NOW_MS)
        tx.run(sql("UPDATE code_keys SET retired_ms = :now WHERE key_id = 'K0'"), now=NOW_MS)
    assert store.read(codes.active_keys) == {"K1": "aa" * 32}


def test_issued_codes_and_their_revocation(seeded: Storage) -> None:
    with seeded.writing() as tx:
        assert codes.enterprise_name(tx, PLAIN) == "海淀某餐饮公司"
        assert codes.enterprise_name(tx, UNREGISTERED) is None
        assert codes.latest_code_from(tx, PLAIN, "2026-11-24") is None
        codes.add_code(tx, PLAIN, "2026-11-24", "K1", "text-24", NOW_MS)
        codes.add_code(tx, PLAIN, "2026-11-25", "K1", "text-25", NOW_MS)
        codes.add_code(tx, GOOD, "2026-11-24", "K1", "good-24", NOW_MS)
        assert codes.latest_code_from(tx, PLAIN, "2026-11-24") == ("2026-11-25", "text-25", None)
        assert codes.latest_code_from(tx, PLAIN, "2026-11-26") is None
        dates = codes.revoke_in_force(tx, PLAIN, reason="遗失", username="sup", role="supervisor", agency_id=None, now_ms=NOW_MS)
        assert dates == ["2026-11-24", "2026-11-25"]
        assert codes.revoke_in_force(tx, PLAIN, reason="again", username="sup", role="supervisor", agency_id=None, now_ms=NOW_MS) == []
    with seeded.reading() as tx:
        assert codes.latest_code_from(tx, PLAIN, "2026-11-01") == ("2026-11-25", "text-25", NOW_MS)
        assert codes.revoked_codes(tx) == [(PLAIN, "2026-11-24"), (PLAIN, "2026-11-25")]
        assert codes.revoked_reason(tx, PLAIN, "2026-11-24") == "遗失"
        assert codes.revoked_reason(tx, GOOD, "2026-11-24") is None  # issued, in force
        assert codes.revoked_reason(tx, GOOD, "2026-11-23") is None  # never issued


def test_an_issue_date_is_taken_once(seeded: Storage) -> None:
    with seeded.writing() as tx:
        codes.add_code(tx, PLAIN, "2026-11-24", "K1", "text-24", NOW_MS)
    with pytest.raises(Exception, match="(?i)unique|duplicate"), seeded.writing() as tx:
        codes.add_code(tx, PLAIN, "2026-11-24", "K1", "other", NOW_MS)


def test_agency_names_fall_back_to_the_chinese_name(seeded: Storage) -> None:
    with seeded.writing() as tx:
        tx.run(_AGENCY, id="ECO", name="生态环境局", en="", region="110108")
    with seeded.reading() as tx:
        assert codes.agency_names(tx, "FIRE") == ("消防救援支队", "Fire rescue")
        assert codes.agency_names(tx, "ECO") == ("生态环境局", "生态环境局")
        assert codes.agency_names(tx, "NOPE") is None


def test_an_agency_deals_with_an_enterprise_of_its_region_it_inspected_or_plans_for(seeded: Storage) -> None:
    since = NOW_MS - 365 * DAY_MS
    with seeded.writing() as tx:
        tx.run(_AGENCY, id="ECO", name="生态环境局", en="Ecology", region="110105")  # another district
        tx.run(_AGENCY, id="CITY", name="市局", en="City", region="")  # every district
        for agency, at in (("ECO", NOW_MS - DAY_MS), ("CITY", NOW_MS - DAY_MS), ("FIRE", since - 1)):
            tx.run(_INSPECTION, id=f"I-{agency}", code=PLAIN, agency=agency, at=at)
            tx.run(_PART, id=f"I-{agency}", agency=agency, at=at)
    with seeded.reading() as tx:
        deals = lambda agency, code, now=NOW_MS: codes.agency_deals_with(tx, agency, code, inspected_since=now - 365 * DAY_MS, now_ms=now)  # noqa: E731
        assert deals("CITY", PLAIN) and not deals("ECO", PLAIN)  # ECO inspected, but outside its region
        assert not deals("FIRE", PLAIN)  # one millisecond too long ago
        assert deals("SAMR", GOOD) and not deals("FIRE", GOOD)  # SAMR's draw plan names GOOD
        assert not deals("SAMR", GOOD, NOW_MS + 61 * DAY_MS)  # the plan is over
        assert not deals("NOPE", GOOD) and not deals("SAMR", UNREGISTERED)
