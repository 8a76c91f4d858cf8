"""Low-yield inspections over HTTP on both backends (issue 14 item 6): an enterprise inspected N times in a year
with nothing found is warned about on the next scan, or refused when the policy says so, unless an exception is
stated; the count comes from the results the officers recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.settings import ServerSettings
from server.storage import inspections as rows
from server.storage.engine import storage_for
from tests.server.conftest import NOW_MS, PLAIN, Api
from tests.server.test_scans_api import scan
from tests.server.test_scans_api import api  # noqa: F401  (a fixture: the API on both backends)



def past_inspections(db: str, results: list[str]) -> None:
    """Ended fire-safety inspections of PLAIN a few minutes ago (inside the year whatever the date; another field than
    the scans', so no repeat)."""
    with storage_for(db).writing() as tx:
        for n, result in enumerate(results):
            at = NOW_MS - (n + 2) * 600_000
            iid = f"past-{n}"
            rows.open_inspection(tx, rows.NewInspection(inspection_id=iid, credit_code=PLAIN, region="", lead_agency_id="FIRE", field="fire", opened_ms=at, exception_kind=None, exception_ref=None))
            rows.add_part(tx, rows.Part(inspection_id=iid, officer_id="OFF-FIRE-1", agency_id="FIRE", field="fire", matter="", scan_id=None, device_id=None, joined_ms=at))
            rows.end_part(tx, iid, "OFF-FIRE-1", result, "", at + 300_000)
            rows.end_inspection(tx, iid, at + 300_000)


@pytest.fixture
def strict_api(seeded_url: str, tmp_path: Path) -> Iterator[Api]:
    """The API with a policy that refuses low-yield inspections."""
    policy = (Path(__file__).resolve().parents[2] / "server" / "policy.toml").read_text().replace("refuse = false", "refuse = true")
    (tmp_path / "policy.toml").write_text(policy)
    settings = ServerSettings(db_path=seeded_url, key_dir=tmp_path, mqtt_enabled=False, jobs_enabled=False, policy_path=tmp_path / "policy.toml")
    with TestClient(create_app(settings)) as c:
        yield Api(c)


def test_three_inspections_that_found_nothing_bring_a_warning(api: Api, seeded_url: str) -> None:
    past_inspections(seeded_url, ["no_violation", "no_violation", "rectification_ordered"])
    d = scan(api, "OFF-SAMR-1", PLAIN)
    assert d["outcome"] == "allowed" and "low_yield" not in [w["code"] for w in d["warnings"]]  # one of three found something


def test_the_warning_and_the_refusal(api: Api, seeded_url: str) -> None:
    past_inspections(seeded_url, ["no_violation"] * 3)
    d = scan(api, "OFF-SAMR-1", PLAIN)
    assert d["outcome"] == "allowed" and "low_yield" in [w["code"] for w in d["warnings"]], d


def test_a_strict_policy_refuses(strict_api: Api, seeded_url: str) -> None:
    past_inspections(seeded_url, ["no_violation"] * 3)
    d = scan(strict_api, "OFF-SAMR-1", PLAIN)
    assert (d["outcome"], d["code"]) == ("refused", "low_yield") and "均未发现问题" in d["message_zh"]
