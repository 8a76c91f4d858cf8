"""Random draws (双随机、一公开): enterprises and officers drawn at random, reproducibly, and made public.

The seed is committed before the draw: its SHA-256 is published when the draw is announced, and the
seed itself when the result is. The order is defined without any language's random generator, so
anyone can re-run it: each candidate's rank is SHA-256(seed || ":" || candidate id), ascending.
Eligible enterprises: in the region, not on the no-disturb list, with room left under their band's
yearly cap. Eligible officers: of the agency, with a valid credential for the field, and no declared
conflict with the enterprise they would inspect.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from typing import Any

import msgspec

from protocol.decision import Policy
from server.console import labels
from server.errors import Invalid
from server.rules.alerts import raise_alert
from server.rules.scanning import year_start_ms
from server.storage import draws as stored
from server.storage.engine import Tx

DAY_MS = 86_400_000
#: How long a drawn plan is in force (its enterprises may be inspected under it).
PLAN_VALID_DAYS = 90
#: The largest share of the eligible enterprises the draws of one agency, field and region may name within
#: PLAN_VALID_DAYS (a module constant until the policy file carries it). A "random" draw of every enterprise made each a plan target for 90 days: an exception to the
#: repeat window and the yearly cap for all of them.
MAX_DRAW_SHARE = 0.10
#: ... and the most enterprises they may name, whatever the population.
MAX_DRAW_ENTERPRISES = 500
#: How far in the past an agency administrator may set a draw's time (clocks differ a little). A draw set in
#: the past is drawn at once: its commitment would not be public before it, as 双随机、一公开 requires.
MAX_BACKDATE_MS = 60_000


class DrawError(Invalid):
    """A draw that cannot be made, with the reason."""


class Team(msgspec.Struct, frozen=True, kw_only=True):
    """An enterprise and the officers drawn to inspect it."""

    credit_code: str
    officers: list[str]


class DrawResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a draw produced, with everything needed to re-run it."""

    draw_id: str
    seed: str  # hex
    eligible_enterprises: list[str]
    eligible_officers: list[str]
    conflicts: list[tuple[str, str]]  # (officer, enterprise) pairs excluded
    teams: list[Team]


def rank(seed: bytes, candidate: str) -> str:
    """A candidate's place in the draw: lower goes first."""
    return hashlib.sha256(seed + b":" + candidate.encode()).hexdigest()


def max_enterprises(eligible_count: int) -> int:
    """The most enterprises the draws of one agency, field and region in force at once may name from a
    population of ``eligible_count`` (at least one)."""
    return max(1, min(MAX_DRAW_ENTERPRISES, int(eligible_count * MAX_DRAW_SHARE)))


def _check_scope(tx: Tx, agency_id: str, field: str, region: str, by_supervisor: bool) -> str:
    """The region a draw is made in (empty: the agency's own); DrawError unless the agency, its field and the
    region are registered and, for an agency administrator, the region is the agency's own."""
    scope = stored.agency_region_fields(tx, agency_id)
    if scope is None:
        raise DrawError(f"执法机关 {agency_id!r} 未登记 / agency {agency_id!r} is not registered")
    own_region, fields = scope[0], json.loads(scope[1])
    if not stored.field_registered(tx, field):
        raise DrawError(f"执法领域 {field!r} 未登记 / field {field!r} is not registered")
    if field not in fields:
        raise DrawError(f"{field!r} 不是 {agency_id} 的执法领域 / {field!r} is not among {agency_id}'s fields ({', '.join(fields) or 'none'})")
    region = region or own_region
    if region and not stored.region_registered(tx, region):
        raise DrawError(f"区域 {region!r} 未登记 / region {region!r} is not registered")
    if not by_supervisor and own_region and region != own_region:
        raise DrawError(f"机关管理员只能在本机关的区域 {own_region} 抽查 / an agency administrator draws in the agency's own region {own_region} only")
    return region


def commit_draw(
    tx: Tx,
    *,
    agency_id: str,
    field: str,
    region: str,
    title: str,
    enterprises: int,
    officers_per_team: int,
    draw_at_ms: int,
    now_ms: int,
    policy: Policy,
    announced_by: str,
    by_supervisor: bool,
) -> tuple[str, str]:
    """Announce a draw: a fresh secret seed is kept, its hash published, and a ``draw_announced`` alert names
    who announced it. Returns (draw id, seed hash); DrawError for a draw that may not be made."""
    if enterprises < 1 or officers_per_team < 1:
        raise DrawError("抽查至少一家企业、每组至少一名执法人员 / a draw needs at least one enterprise and one officer per team")
    region = _check_scope(tx, agency_id, field, region, by_supervisor)
    if not by_supervisor and draw_at_ms < now_ms - MAX_BACKDATE_MS:
        raise DrawError("抽取时间不能早于现在 / a draw cannot be set for a time already past")
    stored.lock_draw_share(tx, agency_id, field, region)
    population = len(eligible(tx, agency_id, field, region, policy, now_ms)[0])
    limit = max_enterprises(population)
    # The share holds for all the draws whose plans may still be in force, not for each: ten draws of 10%
    # each would cover everyone again.
    announced = stored.enterprises_announced(tx, agency_id, field, region, now_ms - PLAN_VALID_DAYS * DAY_MS)
    if announced + enterprises > limit:
        raise DrawError(
            f"{PLAN_VALID_DAYS} 天内同一机关、领域和区域的抽查至多抽取 {limit} 家企业（符合条件的 {population} 家的 {MAX_DRAW_SHARE:.0%}，"
            f"且不超过 {MAX_DRAW_ENTERPRISES} 家），已宣布 {announced} 家 / the draws of one agency, field and region name at most {limit}"
            f" enterprises in {PLAN_VALID_DAYS} days ({MAX_DRAW_SHARE:.0%} of the {population} eligible, and at most {MAX_DRAW_ENTERPRISES});"
            f" {announced} already announced"
        )
    seed = os.urandom(32)
    draw_id = f"DRAW-{dt.datetime.fromtimestamp(now_ms / 1000, dt.timezone.utc):%Y%m%d}-{uuid.uuid4().hex[:8]}"
    seed_hash = hashlib.sha256(seed).hexdigest()
    stored.insert_draw(
        tx, draw_id=draw_id, agency_id=agency_id, field=field, region=region, title=title, enterprise_count=enterprises,
        officers_per_team=officers_per_team, seed_hash=seed_hash, seed=seed.hex(), committed_ms=now_ms, draw_at_ms=draw_at_ms,
    )  # fmt: skip
    raise_alert(
        tx, "draw_announced", now_ms,
        f"{announced_by} 宣布双随机抽查 {draw_id}：{_names(tx, 'zh').get(field, field)}，区域 {labels.division(region, 'zh') if region else '全部'}，{enterprises} 家企业",
        f"{announced_by} announced random draw {draw_id}: {_names(tx, 'en').get(field, field)}, region {labels.division(region, 'en') if region else 'all'}, {enterprises} enterprises",
        agency_id=agency_id, ref=draw_id,
    )  # fmt: skip
    return draw_id, seed_hash


def _names(tx: Tx, lang: str) -> dict[str, str]:
    """The fields' names in ``lang`` (an alert's text names the field, not its id: issue 16)."""
    return labels.register_names(tx, lang)["field"]


def eligible(tx: Tx, agency_id: str, field: str, region: str, policy: Policy, now_ms: int) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(enterprises, officers, declared conflicts) eligible for a draw now, each sorted."""
    rows = stored.enterprises_not_protected(tx, region, year_start_ms(now_ms), now_ms)
    enterprises = [code for code, risk, credit, done in rows if done < policy.cap_for(risk, credit)]
    officers = [o for o, fields in stored.officers_valid(tx, agency_id, now_ms) if field in json.loads(fields)]
    return enterprises, officers, stored.declared_conflicts(tx)


def run_draw(seed: bytes, draw_id: str, enterprises: list[str], officers: list[str], conflicts: list[tuple[str, str]], count: int, per_team: int) -> DrawResult:
    """The draw itself: a pure function of its inputs (re-run it to check a published result)."""
    barred = set(conflicts)
    chosen_enterprises = sorted(enterprises, key=lambda c: rank(seed, c))
    officer_order = sorted(officers, key=lambda o: rank(seed, o))
    teams: list[Team] = []
    load: dict[str, int] = dict.fromkeys(officers, 0)
    for code in chosen_enterprises:
        if len(teams) == count:
            break
        # Spread the work: least-loaded officers first, ties broken by their rank in the draw.
        free = sorted((o for o in officer_order if (o, code) not in barred), key=lambda o: (load[o], officer_order.index(o)))
        if len(free) < per_team:
            continue  # not enough officers free of conflicts for this enterprise
        team = free[:per_team]
        for o in team:
            load[o] += 1
        teams.append(Team(credit_code=code, officers=team))
    return DrawResult(draw_id=draw_id, seed=seed.hex(), eligible_enterprises=enterprises, eligible_officers=officers, conflicts=conflicts, teams=teams)


def perform_due_draws(tx: Tx, policy: Policy, now_ms: int) -> list[str]:
    """Run every committed draw whose time has come; record results and their inspection plans (a draw another
    transaction has drawn meanwhile is left to it)."""
    done = []
    for draw_id, agency_id, field, region, title, count, per_team, seed_hex in stored.due_draws(tx, now_ms):
        ents, offs, conflicts = eligible(tx, agency_id, field, region, policy, now_ms)
        count = min(count, max_enterprises(len(ents)))  # the population may have shrunk since the announcement
        result = run_draw(bytes.fromhex(seed_hex), draw_id, ents, offs, conflicts, count, per_team)
        if not stored.mark_drawn(tx, draw_id, now_ms, msgspec.json.encode(result).decode()):
            continue
        stored.insert_draw_plan(
            tx, plan_id=draw_id, agency_id=agency_id, field=field, title=title, valid_from_ms=now_ms,
            valid_to_ms=now_ms + PLAN_VALID_DAYS * DAY_MS, targets=[t.credit_code for t in result.teams],
        )  # fmt: skip
        done.append(draw_id)
    return done


def public_view(con: Tx, draw_id: str) -> dict[str, Any] | None:
    """What the public page shows: the commitment always, the seed and result once drawn."""
    view = stored.draw(con, draw_id)
    if view is None:
        return None
    result_json = view.pop("result_json")
    view["result"] = json.loads(result_json) if result_json else None
    if view["status"] != "drawn":
        view["seed"] = None  # secret until the draw: only its hash is public
    return view
