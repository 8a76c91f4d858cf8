"""Alerts for supervisors: recording one, reading the latest (all, or those of one agency, by kind, by agency, by
whether they were handled), and how each was handled (acknowledged, assigned: table alert_handling).

Rows only: which kinds exist, their severity and how they read are server/rules/alerts.py's.
"""

from __future__ import annotations

from server.storage.engine import Tx, sql

#: The columns of an alert as ``recent_alerts`` returns them, in order.
ALERT_COLUMNS = ("id", "created_ms", "kind", "severity", "credit_code", "agency_id", "device_id", "officer_id", "ref", "message_zh", "message_en")

_INSERT = sql("""
    INSERT INTO alerts(created_ms, kind, severity, credit_code, agency_id, device_id, officer_id, ref, message_zh, message_en)
    VALUES (:created_ms, :kind, :severity, :credit_code, :agency_id, :device_id, :officer_id, :ref, :message_zh, :message_en)
""")

# An agency's alerts are its own, its devices' and its officers' (an alert may name only a device or an officer).
# ``:everyone`` = 1 reads every agency's (supervisors); the kind filter is optional.
_RECENT = sql(f"""
    SELECT {", ".join(ALERT_COLUMNS)} FROM alerts
    WHERE (CAST(:kind AS TEXT) IS NULL OR kind = :kind)
      AND (:everyone = 1
           OR agency_id = :agency_id
           OR device_id IN (SELECT device_id FROM devices WHERE agency_id = :agency_id)
           OR officer_id IN (SELECT officer_id FROM officers WHERE agency_id = :agency_id))
    ORDER BY id DESC LIMIT :limit
""")


def insert_alert(
    tx: Tx,
    *,
    created_ms: int,
    kind: str,
    severity: str,
    message_zh: str,
    message_en: str,
    credit_code: str | None = None,
    agency_id: str | None = None,
    device_id: str | None = None,
    officer_id: str | None = None,
    ref: str | None = None,
) -> None:
    """Add one alert row (inside the caller's transaction)."""
    tx.run(
        _INSERT, created_ms=created_ms, kind=kind, severity=severity, credit_code=credit_code, agency_id=agency_id,
        device_id=device_id, officer_id=officer_id, ref=ref, message_zh=message_zh, message_en=message_en,
    )  # fmt: skip


def recent_alerts(tx: Tx, *, agency_id: str | None, everyone: bool, kind: str | None = None, limit: int) -> list[tuple[object, ...]]:
    """The latest alerts, newest first, as tuples in ``ALERT_COLUMNS`` order: every agency's when ``everyone``,
    else those of ``agency_id`` (its own, its devices', its officers')."""
    return tx.all(_RECENT, kind=kind, everyone=int(everyone), agency_id=agency_id, limit=limit)


# --- handling: acknowledged and assigned (issue 16) -------------------------------------------------------------------

#: The columns of an alert with its handling, as ``alerts_page`` and ``one_alert`` return them, in order.
HANDLED_COLUMNS = ALERT_COLUMNS + ("acknowledged_by", "acknowledged_ms", "assigned_to", "assigned_by", "assigned_ms")
_HANDLED = f"""
    SELECT {", ".join("a." + c for c in ALERT_COLUMNS)}, h.acknowledged_by, h.acknowledged_ms, h.assigned_to, h.assigned_by, h.assigned_ms
    FROM alerts a LEFT JOIN alert_handling h ON h.alert_id = a.id
"""
_ALERT_AGENCY = """(a.agency_id = :{p}
           OR a.device_id IN (SELECT device_id FROM devices WHERE agency_id = :{p})
           OR a.officer_id IN (SELECT officer_id FROM officers WHERE agency_id = :{p}))"""
# ``:everyone`` = 1: every agency's; ``:agency_id`` the viewer's agency otherwise; ``:about`` (optional) the agency the
# alert concerns; ``:state``: '' any, 'new' not acknowledged, 'acknowledged', 'mine' assigned to ``:username``.
_PAGE = sql(
    _HANDLED
    + f"""
    WHERE (CAST(:kind AS TEXT) IS NULL OR a.kind = :kind)
      AND (:everyone = 1 OR {_ALERT_AGENCY.format(p="agency_id")})
      AND (CAST(:about AS TEXT) IS NULL OR {_ALERT_AGENCY.format(p="about")})
      AND (:state = '' OR (:state = 'new' AND h.acknowledged_ms IS NULL) OR (:state = 'acknowledged' AND h.acknowledged_ms IS NOT NULL)
           OR (:state = 'mine' AND h.assigned_to = :username))
    ORDER BY a.id DESC LIMIT :limit
"""
)
_ONE = sql(_HANDLED + " WHERE a.id = :alert_id")
# Whether the alert is the agency's (its own, its devices', its officers'), as ``recent_alerts`` reads it.
_OF_AGENCY = sql(f"SELECT count(*) FROM alerts a WHERE a.id = :alert_id AND {_ALERT_AGENCY.format(p='agency_id')}")
_ENSURE = sql("INSERT INTO alert_handling(alert_id) VALUES (:alert_id) ON CONFLICT (alert_id) DO NOTHING")
_ACKNOWLEDGE = sql("""
    UPDATE alert_handling SET acknowledged_by = :username, acknowledged_ms = :now_ms
    WHERE alert_id = :alert_id AND acknowledged_ms IS NULL
""")
_ASSIGN = sql("UPDATE alert_handling SET assigned_to = :assignee, assigned_by = :username, assigned_ms = :now_ms WHERE alert_id = :alert_id")


def alerts_page(
    tx: Tx, *, agency_id: str | None, everyone: bool, kind: str | None, about: str | None, state: str, username: str, limit: int
) -> list[tuple[object, ...]]:
    """Alerts with their handling, newest first, as tuples in ``HANDLED_COLUMNS`` order (see ``_PAGE`` for the filters)."""
    return tx.all(_PAGE, kind=kind, everyone=int(everyone), agency_id=agency_id, about=about, state=state, username=username, limit=limit)


def one_alert(tx: Tx, alert_id: int) -> tuple[object, ...] | None:
    """One alert with its handling (``HANDLED_COLUMNS`` order), or None."""
    return tx.one(_ONE, alert_id=alert_id)


def alert_of_agency(tx: Tx, alert_id: int, agency_id: str | None) -> bool:
    """Whether the alert concerns the agency: its own, one of its devices', one of its officers'."""
    return agency_id is not None and int(tx.scalar(_OF_AGENCY, alert_id=alert_id, agency_id=agency_id)) > 0


def lock_handling(tx: Tx, alert_id: int) -> None:
    """Make the alert's handling row exist and hold it until the transaction ends (two clicks at once take turns)."""
    tx.lock(f"alert_handling:{alert_id}")
    tx.run(_ENSURE, alert_id=alert_id)


def acknowledge(tx: Tx, alert_id: int, username: str, now_ms: int) -> bool:
    """Mark the alert acknowledged by ``username`` (False: it was already, and is left as it was)."""
    return int(tx.run(_ACKNOWLEDGE, alert_id=alert_id, username=username, now_ms=now_ms).rowcount) == 1


def assign(tx: Tx, alert_id: int, assignee: str, username: str, now_ms: int) -> None:
    """Assign the alert to ``assignee`` (a later assignment replaces an earlier one)."""
    tx.run(_ASSIGN, alert_id=alert_id, assignee=assignee, username=username, now_ms=now_ms)
