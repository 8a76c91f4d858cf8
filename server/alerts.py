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
    "exception_registered": "info",  # a superior assignment or major-risk notice registered through the API
    "draw_announced": "info",  # a random draw announced, naming who announced it (server/draws.py)
    "forged_code": "critical",  # a code whose signature or key does not check out
    "scan_id_conflict": "warning",  # a device reused another scan's id
    "device_agency_mismatch": "warning",  # an officer scanned with another agency's device
    "unrecorded_inspection": "warning",  # an ended inspection not recorded from start to end (server/coverage.py)
    "storage_full": "critical",  # the server's database could not write for a while: ingest was paused (server/ingest.py)
    "storage_failed": "critical",  # ... for another reason than a full disk (an I/O error)
}

#: What each kind is called on a page a person reads (Chinese, English).
LABELS = {
    "provisional_overturned": ("离线判定被推翻", "Offline decision overturned"),
    "inspection_without_scan": ("未扫码的检查", "Inspection without a scan"),
    "unknown_inspection": ("未知检查", "Unknown inspection"),
    "device_alarm": ("设备告警", "Device alarm"),
    "media_integrity": ("录音录像被改动", "Recording altered"),
    "chain_break": ("事件链断裂", "Event chain broken"),
    "clock_suspect": ("设备时钟异常", "Device clock suspect"),
    "device_offline": ("设备离线", "Device offline"),
    "device_backlog": ("设备积压", "Device backlog"),
    "disclosure_due": ("公示即将到期", "Disclosure due"),
    "disclosure_missed": ("公示逾期", "Disclosure missed"),
    "no_disturb_attempt": ("无事不扰拦截", "No-disturb attempt refused"),
    "no_disturb_exception": ("依例外检查无事不扰企业", "No-disturb enterprise on an exception"),
    "repeat_inspection": ("重复检查", "Repeat inspection"),
    "cap_refused": ("超出年度检查上限", "Yearly cap reached"),
    "cap_exception": ("依例外超出年度上限", "Yearly cap passed on an exception"),
    "joint_inspection": ("联合检查", "Joint inspection"),
    "code_revoked": ("企业码作废", "Enterprise code revoked"),
    "credential_refused": ("执法证问题", "Credential refused"),
    "exception_invalid": ("例外依据核验未通过", "Exception did not check out"),
    "exception_pending_review": ("例外依据待复核", "Exception pending review"),
    "exception_rejected": ("例外依据被驳回", "Exception rejected"),
    "exception_registered": ("登记例外依据", "Exception basis registered"),
    "draw_announced": ("宣布双随机抽查", "Random draw announced"),
    "forged_code": ("疑似伪造企业码", "Possibly forged code"),
    "scan_id_conflict": ("扫码编号冲突", "Scan id conflict"),
    "device_agency_mismatch": ("使用其他机关设备", "Another agency's device"),
    "unrecorded_inspection": ("未全程记录", "Not recorded start to end"),
    "storage_full": ("服务器存储已满", "Server storage full"),
    "storage_failed": ("服务器存储写入失败", "Server storage failed"),
}


def label(kind: str, lang: str) -> str:
    """The name of an alert kind in ``lang`` ("zh" or "en")."""
    zh, en = LABELS.get(kind, ("其他预警", "Other alert"))
    return zh if lang == "zh" else en


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
