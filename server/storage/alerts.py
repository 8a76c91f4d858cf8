"""Alerts for supervisors: recording one, and reading the latest, all or those of one agency.

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
