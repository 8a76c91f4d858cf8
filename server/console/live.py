"""What the supervision dashboard shows live, for one principal: inspections under way, alerts, the
device fleet and today's figures. An agency's administrator sees their agency's share only."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from protocol.cst import CST
from server.rules.alerts import label
from server.console.auth import Principal
from server.storage.engine import Tx
from server.storage import reports
from server.storage.alerts import ALERT_COLUMNS, recent_alerts

#: An open inspection older than this is no longer shown as under way.
UNDER_WAY_HOURS = 12
#: The most inspections under way shown.
UNDER_WAY_LIMIT = 100


def _today_start_ms(now_ms: int) -> int:
    day = dt.datetime.fromtimestamp(now_ms / 1000, CST).date()
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=CST).timestamp() * 1000)


def _own_agency(p: Principal) -> str | None:
    """The agency whose share the principal sees (None: everything)."""
    return p.agency_id if p.role == "agency_admin" else None


def under_way(tx: Tx, p: Principal, now_ms: int) -> list[dict[str, Any]]:
    """Inspections under way: who, which agencies, which enterprise, since when, recorded or not."""
    out = []
    for iid, code, name, lead, field, opened, exc, media in reports.under_way(tx, now_ms - UNDER_WAY_HOURS * 3_600_000, _own_agency(p), UNDER_WAY_LIMIT):
        parts = reports.parts_named(tx, iid)
        agencies = sorted({agency_name or agency for _, _, agency, agency_name in parts})
        out.append(
            {
                "inspection_id": iid, "credit_code": code, "enterprise": name or code, "lead_agency_id": lead, "field": field,
                "since_ms": opened, "officers": [officer_name or officer for officer, officer_name, _, _ in parts], "agencies": agencies,
                "joint": len({agency for _, _, agency, _ in parts}) > 1, "recorded": media > 0, "exception": exc,
            }
        )  # fmt: skip
    return out


def alerts(con: Tx, p: Principal, limit: int = 30) -> list[dict[str, Any]]:
    """The latest alerts the principal may see."""
    cols = ("id", "created_ms", "kind", "severity", "agency_id", "message_zh", "message_en")
    agency = _own_agency(p)
    rows = [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in recent_alerts(con, agency_id=agency, everyone=agency is None, limit=limit)]
    return [{**{c: r[c] for c in cols}, "label_zh": label(r["kind"], "zh"), "label_en": label(r["kind"], "en")} for r in rows]


def fleet(con: Tx, p: Principal) -> list[dict[str, Any]]:
    """Every device the principal may see: online, backlog, last heard from, battery, clock offset."""
    out = []
    for device_id, kind, agency, online, last_seen, status in reports.fleet(con, _own_agency(p)):
        st = json.loads(status) if status else {}
        out.append(
            {
                "device_id": device_id, "kind": kind, "agency_id": agency, "online": bool(online), "last_seen_ms": last_seen,
                "backlog": st.get("outbox_depth"), "oldest_unsent_s": st.get("oldest_unsent_age_s"), "battery": st.get("battery_pct"),
                "clock_offset_ms": st.get("clock_offset_ms"),
            }
        )  # fmt: skip
    return out


def snapshot(tx: Tx, p: Principal, now_ms: int | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, now."""
    from server.console.stats import summary

    now = now_ms if now_ms is not None else int(time.time() * 1000)
    return {
        "now_ms": now,
        "under_way": under_way(tx, p, now),
        "alerts": alerts(tx, p),
        "fleet": fleet(tx, p),
        "today": summary(tx, _today_start_ms(now), now + 1, _own_agency(p)),
    }
