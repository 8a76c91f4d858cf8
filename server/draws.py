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
import sqlite3
import uuid
from typing import Any

import msgspec

from protocol.decision import Policy
from server.alerts import raise_alert
from server.scanning import year_start_ms

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


class DrawError(ValueError):
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


def _check_scope(con: sqlite3.Connection, agency_id: str, field: str, region: str, by_supervisor: bool) -> str:
    """The region a draw is made in (empty: the agency's own); DrawError unless the agency, its field and the
    region are registered and, for an agency administrator, the region is the agency's own."""
    row = con.execute("SELECT region, fields FROM agencies WHERE agency_id = ?", (agency_id,)).fetchone()
    if row is None:
        raise DrawError(f"执法机关 {agency_id!r} 未登记 / agency {agency_id!r} is not registered")
    own_region, fields = row[0], json.loads(row[1])
    if con.execute("SELECT 1 FROM fields WHERE field_id = ?", (field,)).fetchone() is None:
        raise DrawError(f"执法领域 {field!r} 未登记 / field {field!r} is not registered")
    if field not in fields:
        raise DrawError(f"{field!r} 不是 {agency_id} 的执法领域 / {field!r} is not among {agency_id}'s fields ({', '.join(fields) or 'none'})")
    region = region or own_region
    known = con.execute("SELECT 1 FROM agencies WHERE region = ? UNION ALL SELECT 1 FROM enterprises WHERE region = ? LIMIT 1", (region, region)).fetchone()
    if region and known is None:
        raise DrawError(f"区域 {region!r} 未登记 / region {region!r} is not registered")
    if not by_supervisor and own_region and region != own_region:
        raise DrawError(f"机关管理员只能在本机关的区域 {own_region} 抽查 / an agency administrator draws in the agency's own region {own_region} only")
    return region


def commit_draw(
    con: sqlite3.Connection,
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
    region = _check_scope(con, agency_id, field, region, by_supervisor)
    if not by_supervisor and draw_at_ms < now_ms - MAX_BACKDATE_MS:
        raise DrawError("抽取时间不能早于现在 / a draw cannot be set for a time already past")
    population = len(eligible(con, agency_id, field, region, policy, now_ms)[0])
    limit = max_enterprises(population)
    # The share holds for all the draws whose plans may still be in force, not for each: ten draws of 10%
    # each would cover everyone again.
    announced = con.execute(
        "SELECT COALESCE(SUM(enterprise_count), 0) FROM draws WHERE agency_id = ? AND field = ? AND region = ? AND committed_ms > ?",
        (agency_id, field, region, now_ms - PLAN_VALID_DAYS * DAY_MS),
    ).fetchone()[0]
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
    con.execute(
        "INSERT INTO draws(draw_id, agency_id, field, region, title, enterprise_count, officers_per_team, seed_hash, seed, committed_ms, draw_at_ms, status)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'committed')",
        (draw_id, agency_id, field, region, title, enterprises, officers_per_team, seed_hash, seed.hex(), now_ms, draw_at_ms),
    )
    raise_alert(
        con, "draw_announced", now_ms,
        f"{announced_by} 宣布双随机抽查 {draw_id}：{field}，区域 {region or '全部'}，{enterprises} 家企业",
        f"{announced_by} announced random draw {draw_id}: {field}, region {region or 'all'}, {enterprises} enterprises",
        agency_id=agency_id, ref=draw_id,
    )  # fmt: skip
    return draw_id, seed_hash


def eligible(con: sqlite3.Connection, agency_id: str, field: str, region: str, policy: Policy, now_ms: int) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(enterprises, officers, declared conflicts) eligible for a draw now, each sorted."""
    year_start = year_start_ms(now_ms)
    rows = con.execute(
        "SELECT e.credit_code, e.risk, e.credit, (SELECT COUNT(*) FROM inspections i WHERE i.credit_code = e.credit_code AND i.opened_ms >= ?)"
        " FROM enterprises e WHERE (? = '' OR e.region = ?) AND NOT EXISTS ("
        "  SELECT 1 FROM no_disturb n WHERE n.credit_code = e.credit_code AND n.removed_ms IS NULL AND n.valid_from_ms <= ? AND (n.valid_to_ms IS NULL OR n.valid_to_ms >= ?))"
        " ORDER BY e.credit_code",
        (year_start, region, region, now_ms, now_ms),
    ).fetchall()
    enterprises = [code for code, risk, credit, done in rows if done < policy.cap_for(risk, credit)]
    officers = [
        o
        for o, fields in con.execute(
            "SELECT officer_id, fields FROM officers WHERE agency_id = ? AND revoked_ms IS NULL AND valid_from_ms <= ? AND valid_to_ms >= ? ORDER BY officer_id",
            (agency_id, now_ms, now_ms),
        )
        if field in json.loads(fields)
    ]
    conflicts = [(o, c) for o, c in con.execute("SELECT officer_id, credit_code FROM conflicts ORDER BY officer_id, credit_code")]
    return enterprises, officers, conflicts


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


def perform_due_draws(con: sqlite3.Connection, policy: Policy, now_ms: int) -> list[str]:
    """Run every committed draw whose time has come; record results and their inspection plans."""
    done = []
    due = con.execute(
        "SELECT draw_id, agency_id, field, region, title, enterprise_count, officers_per_team, seed FROM draws WHERE status = 'committed' AND draw_at_ms <= ? ORDER BY draw_at_ms",
        (now_ms,),
    ).fetchall()
    for draw_id, agency_id, field, region, title, count, per_team, seed_hex in due:
        ents, offs, conflicts = eligible(con, agency_id, field, region, policy, now_ms)
        count = min(count, max_enterprises(len(ents)))  # the population may have shrunk since the announcement
        result = run_draw(bytes.fromhex(seed_hex), draw_id, ents, offs, conflicts, count, per_team)
        con.execute(
            "UPDATE draws SET status = 'drawn', drawn_ms = ?, result_json = ? WHERE draw_id = ?", (now_ms, msgspec.json.encode(result).decode(), draw_id)
        )
        con.execute(
            "INSERT INTO plans(plan_id, agency_id, field, kind, title, valid_from_ms, valid_to_ms, created_ms) VALUES (?, ?, ?, 'random_draw', ?, ?, ?, ?)",
            (draw_id, agency_id, field, title, now_ms, now_ms + PLAN_VALID_DAYS * DAY_MS, now_ms),
        )
        con.executemany("INSERT INTO plan_targets(plan_id, credit_code) VALUES (?, ?)", [(draw_id, t.credit_code) for t in result.teams])
        done.append(draw_id)
    return done


def public_view(con: sqlite3.Connection, draw_id: str) -> dict[str, Any] | None:
    """What the public page shows: the commitment always, the seed and result once drawn."""
    row = con.execute(
        "SELECT draw_id, agency_id, field, region, title, enterprise_count, officers_per_team, seed_hash, seed, committed_ms, draw_at_ms, drawn_ms, status, result_json"
        " FROM draws WHERE draw_id = ?",
        (draw_id,),
    ).fetchone()
    if row is None:
        return None
    keys = ("draw_id", "agency_id", "field", "region", "title", "enterprise_count", "officers_per_team", "seed_hash", "seed", "committed_ms", "draw_at_ms", "drawn_ms", "status")
    view = dict(zip(keys, row[:-1], strict=True))
    view["result"] = json.loads(row[-1]) if row[-1] else None
    if view["status"] != "drawn":
        view["seed"] = None  # secret until the draw: only its hash is public
    return view
