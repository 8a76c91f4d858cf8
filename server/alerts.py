"""Alerts for supervisors: what needs a person's attention, in Chinese and English."""

from __future__ import annotations

import sqlite3

#: Alert kinds and their severities.
SEVERITY = {
    "provisional_overturned": "warning",  # a terminal's offline decision that the server decided differently
    "inspection_without_scan": "warning",
    "unknown_inspection": "warning",
    "device_alarm": "critical",
    "media_integrity": "critical",
    "chain_break": "critical",
    "clock_suspect": "warning",  # a device's event stamped with a time that cannot be right (server/clocks.py)
    "device_offline": "warning",
    "device_backlog": "warning",
    "disclosure_due": "info",
    "disclosure_missed": "warning",
    # Raised by every scan decision, the phone's and the terminal's alike (server/scanning.py).
    "no_disturb_attempt": "warning",  # a no-disturb enterprise scanned without an exception: refused
    "no_disturb_exception": "info",  # a no-disturb enterprise inspected on an exception that checked out
    "repeat_inspection": "info",  # a repeat refused, or allowed on an exception
    "cap_refused": "warning",
    "cap_exception": "info",
    "joint_inspection": "info",
    "code_revoked": "warning",  # an enterprise's code revoked, with who and why (server/codes.py)
    "credential_refused": "warning",
    "exception_invalid": "warning",  # a stated exception that did not check out
    "exception_pending_review": "warning",  # allowed on an unregistered urgent exception: a supervisor reviews it
    "exception_rejected": "warning",  # ... and the supervisor rejected it
    "forged_code": "critical",  # a code whose signature or key does not check out
    "scan_id_conflict": "warning",  # a device reused another scan's id
    "unrecorded_inspection": "warning",  # an ended inspection not recorded from start to end (server/coverage.py)
}


def agency_scope(agency_id: str | None) -> tuple[str, tuple[str | None, ...]]:
    """SQL condition (and its arguments) for the alerts of one agency: its own, its devices', its officers'."""
    return (
        "(agency_id = ? OR device_id IN (SELECT device_id FROM devices WHERE agency_id = ?)"
        " OR officer_id IN (SELECT officer_id FROM officers WHERE agency_id = ?))",
        (agency_id,) * 3,
    )


def raise_alert(
    con: sqlite3.Connection,
    kind: str,
    now_ms: int,
    message_zh: str,
    message_en: str,
    *,
    credit_code: str | None = None,
    agency_id: str | None = None,
    device_id: str | None = None,
    officer_id: str | None = None,
    ref: str | None = None,
) -> None:
    """Record an alert (inside the caller's transaction)."""
    con.execute(
        "INSERT INTO alerts(created_ms, kind, severity, credit_code, agency_id, device_id, officer_id, ref, message_zh, message_en)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (now_ms, kind, SEVERITY.get(kind, "warning"), credit_code, agency_id, device_id, officer_id, ref, message_zh, message_en),
    )
