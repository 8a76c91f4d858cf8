"""Evidence bundles and published heads (issue 17) attacked, on both backends: periods of ten years or far in the
future, another agency's device, made-up cases and devices, another enterprise's records, hostile ids in the path,
and tree heads asked for by absurd sizes. Every answer is a documented 4xx, never a 500, and nothing leaks."""

from __future__ import annotations

import time

import pytest

from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import FRAGILE, GOOD, PLAIN, UNREGISTERED, Api
from tests.server.test_bundle import BUNDLES, demo

DAY = 86_400_000


def test_periods_that_are_too_long_reversed_or_far_away(api: Api, seeded_url: str) -> None:  # noqa: F811
    demo(api, seeded_url)
    now = int(time.time() * 1000)
    for what in ("device/BR-SAMR-1", f"enterprise/{PLAIN}"):
        for lo, hi, want in (
            (now - 3650 * DAY, now, 400),  # ten years
            (now, now - DAY, 400),  # reversed
            (-1, now, 400),
            (now, 2**63, 400),
            (0, 2**64, 400),
            (10**17, 10**17 + DAY, 400),  # the year 3 170 000: its days cannot be written (was a 500)
            (2**63 - 2 * DAY, 2**63 - 1, 400),
            (4_102_444_800_000 - DAY, 4_102_444_800_000, 200),  # the last day before 2100: nothing there, but a bundle
        ):
            r = api.get(f"{BUNDLES}/{what}?from_ms={lo}&to_ms={hi}")
            assert r.status_code == want, (what, lo, hi, r.status_code, r.text[:300])
        for query in ("from_ms=abc&to_ms=1", "from_ms=1", "", "from_ms=1.5&to_ms=2", f"from_ms={now}&to_ms={now}e3"):
            assert api.get(f"{BUNDLES}/{what}?{query}").status_code == 400, (what, query)


def test_another_agencys_device_and_made_up_things(api: Api, seeded_url: str) -> None:  # noqa: F811
    demo(api, seeded_url)
    now = int(time.time() * 1000)
    period = f"from_ms={now - DAY}&to_ms={now + DAY}"
    assert api.as_("admin-SAMR").get(f"{BUNDLES}/device/BR-FIRE-1?{period}").status_code == 403
    assert api.as_("OFF-SAMR-1").get(f"{BUNDLES}/device/BR-SAMR-1?{period}").status_code == 403  # officers: inspections only
    assert api.as_("ent-plain").get(f"{BUNDLES}/device/BR-SAMR-1?{period}").status_code == 403
    for user in ("sup", "admin-SAMR", "OFF-SAMR-1", "ent-plain"):
        assert api.as_(user).get(f"{BUNDLES}/case/CASE-2026-99999").status_code == 404, user
        assert api.as_(user).get(f"{BUNDLES}/case/..%2F..%2Fetc%2Fpasswd").status_code == 404, user
        assert api.as_(user).get(f"{BUNDLES}/inspection/..%2F..%2Fetc%2Fpasswd").status_code in (403, 404), user
        assert api.as_(user).get(f"{BUNDLES}/inspection/" + "x" * 5000).status_code in (400, 403, 404, 414), user
    assert api.get(f"{BUNDLES}/enterprise/{UNREGISTERED}?{period}").status_code == 404
    assert api.get(f"{BUNDLES}/enterprise/not-a-code?{period}").status_code in (400, 404)
    assert api.get(f"{BUNDLES}/device/%00?{period}").status_code in (400, 404)


def test_an_enterprise_exports_only_itself(api: Api, seeded_url: str) -> None:  # noqa: F811
    inspection, other = demo(api, seeded_url)
    now = int(time.time() * 1000)
    period = f"from_ms={now - DAY}&to_ms={now + DAY}"
    for code in (FRAGILE, GOOD, UNREGISTERED, PLAIN.lower(), f"{PLAIN}%20"):
        r = api.as_("ent-plain").get(f"{BUNDLES}/enterprise/{code}?{period}")
        assert r.status_code in (403, 404), (code, r.status_code)
    assert api.as_("ent-plain").get(f"{BUNDLES}/inspection/{other}").status_code == 403
    assert api.as_("ent-plain").get(f"{BUNDLES}/enterprise/{PLAIN}?{period}").status_code == 200


@pytest.mark.parametrize(("size", "want"), [("0", (200, 404)), ("-1", (400,)), ("1e3", (400, 404)), ("abc", (400,)), (str(2**63), (400,)), (str(2**63 - 1), (404,)), ("999999999", (404,)), ("", (200, 400))])
def test_tree_heads_by_absurd_sizes(api: Api, seeded_url: str, size: str, want: tuple[int, ...]) -> None:  # noqa: F811
    demo(api, seeded_url)
    r = api.client.get(f"/api/v1/evidence/tree-head?size={size}")
    assert r.status_code in want, (size, r.status_code, r.text[:200])
    for lang in ("zh", "en", "xx", "zh&size=-1"):
        assert api.client.get(f"/public/tree-head?lang={lang}").status_code in (200, 400), lang


def test_a_past_head_is_the_one_signed(api: Api, seeded_url: str) -> None:  # noqa: F811
    demo(api, seeded_url)
    latest = api.client.get("/api/v1/evidence/tree-head").json()
    again = api.client.get(f"/api/v1/evidence/tree-head?size={latest['tree_size']}").json()
    assert again == latest
    assert api.client.get(f"/api/v1/evidence/tree-head?size={latest['tree_size'] + 1}").status_code == 404
