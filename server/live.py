"""What the supervision dashboard shows live, for one principal: inspections under way, alerts, the
device fleet and today's figures. An agency's administrator sees their agency's share only."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from typing import Any

from server.alerts import agency_scope, label
from server.auth import Principal

_CST = dt.timezone(dt.timedelta(hours=8))
#: An open inspection older than this is no longer shown as under way.
UNDER_WAY_HOURS = 12


def _today_start_ms(now_ms: int) -> int:
    day = dt.datetime.fromtimestamp(now_ms / 1000, _CST).date()
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=_CST).timestamp() * 1000)


def under_way(con: sqlite3.Connection, p: Principal, now_ms: int) -> list[dict[str, Any]]:
    """Inspections under way: who, which agencies, which enterprise, since when, recorded or not."""
    where, args = "", ()
    if p.role == "agency_admin":
        where, args = " AND i.inspection_id IN (SELECT inspection_id FROM inspection_parts WHERE agency_id = ?)", (p.agency_id,)
    rows = con.execute(
        "SELECT i.inspection_id, i.credit_code, e.name, i.lead_agency_id, i.field, i.opened_ms, i.exception_kind,"
        " (SELECT COUNT(*) FROM media m WHERE m.inspection_id = i.inspection_id AND m.media_kind IN ('video', 'audio'))"
        " FROM inspections i LEFT JOIN enterprises e USING (credit_code)"
        " WHERE i.status = 'open' AND i.opened_ms >= ?" + where + " ORDER BY i.opened_ms DESC LIMIT 100",
        (now_ms - UNDER_WAY_HOURS * 3_600_000, *args),
    ).fetchall()
    out = []
    for iid, code, name, lead, field, opened, exc, media in rows:
        parts = con.execute(
            "SELECT p.officer_id, o.name, p.agency_id, a.name FROM inspection_parts p LEFT JOIN officers o USING (officer_id) LEFT JOIN agencies a ON a.agency_id = p.agency_id"
            " WHERE p.inspection_id = ? ORDER BY p.joined_ms",
            (iid,),
        ).fetchall()
        agencies = sorted({r[3] or r[2] for r in parts})
        out.append(
            {
                "inspection_id": iid, "credit_code": code, "enterprise": name or code, "lead_agency_id": lead, "field": field,
                "since_ms": opened, "officers": [r[1] or r[0] for r in parts], "agencies": agencies, "joint": len({r[2] for r in parts}) > 1,
                "recorded": media > 0, "exception": exc,
            }
        )  # fmt: skip
    return out


def alerts(con: sqlite3.Connection, p: Principal, limit: int = 30) -> list[dict[str, Any]]:
    """The latest alerts the principal may see."""
    where, args = "", ()
    if p.role == "agency_admin":
        scope, args = agency_scope(p.agency_id)
        where = " WHERE " + scope
    cols = ("id", "created_ms", "kind", "severity", "message_zh", "message_en")
    rows = [dict(zip(cols, r, strict=True)) for r in con.execute(f"SELECT {', '.join(cols)} FROM alerts{where} ORDER BY id DESC LIMIT ?", (*args, limit))]
    return [{**r, "label_zh": label(r["kind"], "zh"), "label_en": label(r["kind"], "en")} for r in rows]


def fleet(con: sqlite3.Connection, p: Principal) -> list[dict[str, Any]]:
    """Every device the principal may see: online, backlog, last heard from, battery, clock offset."""
    where, args = "", ()
    if p.role == "agency_admin":
        where, args = " WHERE d.agency_id = ?", (p.agency_id,)
    out = []
    for device_id, kind, agency, online, last_seen, status in con.execute(
        "SELECT d.device_id, d.kind, d.agency_id, COALESCE(s.online, 0), s.last_seen_ms, s.last_status_json FROM devices d LEFT JOIN device_state s USING (device_id)"
        + where + " ORDER BY d.device_id",
        args,
    ):  # fmt: skip
        st = json.loads(status) if status else {}
        out.append(
            {
                "device_id": device_id, "kind": kind, "agency_id": agency, "online": bool(online), "last_seen_ms": last_seen,
                "backlog": st.get("outbox_depth"), "oldest_unsent_s": st.get("oldest_unsent_age_s"), "battery": st.get("battery_pct"),
                "clock_offset_ms": st.get("clock_offset_ms"),
            }
        )  # fmt: skip
    return out


def snapshot(con: sqlite3.Connection, p: Principal, now_ms: int | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, now."""
    from server.stats import summary

    now = now_ms if now_ms is not None else int(time.time() * 1000)
    agency = p.agency_id if p.role == "agency_admin" else None
    return {
        "now_ms": now,
        "under_way": under_way(con, p, now),
        "alerts": alerts(con, p),
        "fleet": fleet(con, p),
        "today": summary(con, _today_start_ms(now), now + 1, agency),
    }
