"""Alerts for supervisors: what needs a person's attention, in Chinese and English; and how a person handles one
(acknowledged, assigned to someone: who and when, kept in alert_handling and as server records in the evidence log).

Who handles an alert: a supervisor any; an agency's administrator those of their agency (its own, its devices', its
officers'), as they see them. An alert is acknowledged once; it may be assigned again (the latest assignment counts).
Whom to: an active account of a supervisor, or of an administrator of the agency the alert concerns (an agency's
administrator assigns within their agency only). Not to an officer: officers do not see the alerts (their page is the
scan), so an alert assigned to one would be seen by nobody."""

from __future__ import annotations

from typing import Any

from server.console import labels
from server.errors import Conflict, Forbidden, Invalid, NotFound
from server.evidence.records import append_record
from server.storage import alerts as stored
from server.storage.alerts import insert_alert
from server.storage.engine import Tx
from server.storage.users import active_user

#: Every alert kind: (severity, Chinese name, English name), the names as a person reads them on a page.
KINDS: dict[str, tuple[str, str, str]] = {
    "provisional_overturned": ("warning", "离线判定被推翻", "Offline decision overturned"),  # a terminal's offline decision that the server decided differently
    "inspection_without_scan": ("warning", "未扫码的检查", "Inspection without a scan"),
    "unknown_inspection": ("warning", "未知检查", "Unknown inspection"),
    "device_alarm": ("critical", "设备告警", "Device alarm"),
    "media_integrity": ("critical", "录音录像被改动", "Recording altered"),
    "chain_break": ("critical", "事件链断裂", "Event chain broken"),
    "clock_suspect": ("warning", "设备时钟异常", "Device clock suspect"),  # a device's event stamped with a time that cannot be right (server/ingest/clocks.py)
    "device_offline": ("warning", "设备离线", "Device offline"),
    "device_backlog": ("warning", "设备积压", "Device backlog"),
    "disclosure_due": ("info", "公示即将到期", "Disclosure due"),
    "disclosure_missed": ("warning", "公示逾期", "Disclosure missed"),
    # Raised by every scan decision, the phone's and the terminal's alike (server/rules/scanning.py).
    "no_disturb_attempt": ("warning", "无事不扰拦截", "No-disturb attempt refused"),  # a no-disturb enterprise scanned without an exception: refused
    "no_disturb_exception": ("info", "依例外检查无事不扰企业", "No-disturb enterprise on an exception"),  # a no-disturb enterprise inspected on an exception that checked out
    "repeat_inspection": ("info", "重复检查", "Repeat inspection"),  # a repeat refused, or allowed on an exception
    "cap_refused": ("warning", "超出年度检查上限", "Yearly cap reached"),
    "cap_exception": ("info", "依例外超出年度上限", "Yearly cap passed on an exception"),
    "joint_inspection": ("info", "联合检查", "Joint inspection"),
    "code_revoked": ("warning", "企业码作废", "Enterprise code revoked"),  # an enterprise's code revoked, with who and why (server/rules/codes.py)
    "credential_refused": ("warning", "执法证问题", "Credential refused"),
    "exception_invalid": ("warning", "例外依据核验未通过", "Exception did not check out"),  # a stated exception that did not check out
    "exception_pending_review": ("warning", "例外依据待复核", "Exception pending review"),  # allowed on an unregistered urgent exception: a supervisor reviews it
    "exception_rejected": ("warning", "例外依据被驳回", "Exception rejected"),  # ... and the supervisor rejected it
    "exception_registered": ("info", "登记例外依据", "Exception basis registered"),  # a superior assignment or major-risk notice registered through the API
    "draw_announced": ("info", "宣布双随机抽查", "Random draw announced"),  # a random draw announced, naming who announced it (server/jobs/draws.py)
    "forged_code": ("critical", "疑似伪造企业码", "Possibly forged code"),  # a code whose signature or key does not check out
    "scan_id_conflict": ("warning", "扫码编号冲突", "Scan id conflict"),  # a device reused another scan's id
    "device_agency_mismatch": ("warning", "使用其他机关设备", "Another agency's device"),  # an officer scanned with another agency's device
    "unrecorded_inspection": ("warning", "未全程记录", "Not recorded start to end"),  # an ended inspection not recorded from start to end (server/evidence/coverage.py)
    "letter_issued": ("info", "收到监督文书", "Supervision letter issued"),  # a supervision opinion or decision letter to an agency (server/supervision/workflow.py)
    "letter_replied": ("info", "整改情况待审核", "Rectification report to review"),  # ... the agency reported on it
    "letter_returned": ("warning", "整改情况被退回", "Rectification report sent back"),
    "letter_overdue": ("warning", "监督文书逾期未整改", "Supervision letter overdue"),  # no report by the deadline: a decision letter may follow
    "low_rating": ("warning", "企业差评", "Low rating by an enterprise"),  # an enterprise rated an inspection 1 or 2 of 5 (server/supervision/ratings.py)
    "storage_full": ("critical", "服务器存储已满", "Server storage full"),  # the server's database could not write for a while: ingest was paused (server/ingest/subscriber.py)
    "storage_failed": ("critical", "服务器存储写入失败", "Server storage failed"),  # ... for another reason than a full disk (an I/O error)
    # Raised by enforcement cases (server/cases/: decide.py, review.py, transfers.py).
    "major_without_review": ("warning", "重大执法决定未经法制审核", "Major decision without legal review"),  # refused: a major decision needs a passed review
    "review_disagreement": ("warning", "法制审核意见分歧", "Legal review disagreement"),  # escalated to the agency's head with both opinions
    "case_transfer": ("info", "收到移送案件", "Case transferred to the agency"),
    "review_overdue": ("warning", "法制审核逾期", "Legal review overdue"),
    # A case not yet decided near its decision deadline, and past it (server/cases/deadlines.py; ref: <case id>@<deadline>).
    "case_deadline_due": ("info", "案件办案期限将至", "Case decision deadline near"),
    "case_overdue": ("warning", "案件超过办案期限", "Case past its decision deadline"),
}

labels.register("alert_kind", LABELS := {kind: (zh, en) for kind, (_, zh, en) in KINDS.items()})
#: Alert kinds and their severities.
SEVERITY = {kind: severity for kind, (severity, _, _) in KINDS.items()}


def label(kind: str, lang: str) -> str:
    """The name of an alert kind in ``lang`` ("zh" or "en")."""
    zh, en = LABELS.get(kind, ("其他预警", "Other alert"))
    return zh if lang == "zh" else en


def raise_alert(
    con: Tx,
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
    """Record an alert (inside the caller's transaction: a Tx, or a raw SQLite connection from code not yet moved)."""
    insert_alert(
        con, created_ms=now_ms, kind=kind, severity=SEVERITY.get(kind, "warning"), message_zh=message_zh, message_en=message_en,
        credit_code=credit_code, agency_id=agency_id, device_id=device_id, officer_id=officer_id, ref=ref,
    )  # fmt: skip


def visible_alert(tx: Tx, alert_id: int, role: str, agency_id: str | None) -> dict[str, Any]:
    """The alert with its handling, if the person may handle it: 404 for no such alert, 403 for another agency's."""
    row = stored.one_alert(tx, alert_id)
    if row is None:
        raise NotFound(f"没有编号为 {alert_id} 的预警 / no alert {alert_id}")
    if role != "supervisor" and not stored.alert_of_agency(tx, alert_id, agency_id):
        raise Forbidden("这条预警属于其他执法机关 / this alert belongs to another agency")
    return dict(zip(stored.HANDLED_COLUMNS, row, strict=True))


def acknowledge_alert(tx: Tx, alert_id: int, *, username: str, role: str, agency_id: str | None, now_ms: int) -> dict[str, Any]:
    """Acknowledge the alert (409 when it was already: who did and when stay as they were)."""
    visible_alert(tx, alert_id, role, agency_id)
    stored.lock_handling(tx, alert_id)  # two clicks at once: the second waits, then reads the first's
    alert = visible_alert(tx, alert_id, role, agency_id)
    if alert["acknowledged_ms"] is not None:
        raise Conflict(f"这条预警已由 {alert['acknowledged_by']} 确认 / this alert was already acknowledged by {alert['acknowledged_by']}")
    stored.acknowledge(tx, alert_id, username, now_ms)
    append_record(tx, kind="alert.acknowledged", subject=f"alert:{alert_id}", actor=username, content={"alert_id": alert_id, "kind": alert["kind"]}, now_ms=now_ms)
    return visible_alert(tx, alert_id, role, agency_id)


def assign_alert(
    tx: Tx, alert_id: int, assignee: str, *, username: str, role: str, agency_id: str | None, now_ms: int
) -> dict[str, Any]:
    """Assign the alert to the account ``assignee`` (see the module docstring for whom)."""
    visible_alert(tx, alert_id, role, agency_id)
    stored.lock_handling(tx, alert_id)  # two clicks at once: the second waits, then reads the first's
    alert = visible_alert(tx, alert_id, role, agency_id)
    found = active_user(tx, assignee)
    if found is None:
        raise Invalid(f"没有名为 {assignee} 的有效账号 / no active account {assignee!r}")
    target_role, target_agency = found[0][1], found[0][2]
    if target_role == "supervisor":
        ok = role == "supervisor"  # an agency's administrator assigns within the agency
    elif target_role == "agency_admin":
        ok = stored.alert_of_agency(tx, alert_id, target_agency) and (role == "supervisor" or target_agency == agency_id)
    else:
        ok = False
    if not ok:
        raise Invalid(f"不能把这条预警分派给 {assignee}：须为监督人员，或预警所涉机关的管理员 / {assignee} may not be assigned this alert:"
                      " a supervisor, or an administrator of the agency the alert concerns")  # fmt: skip
    stored.assign(tx, alert_id, assignee, username, now_ms)
    append_record(tx, kind="alert.assigned", subject=f"alert:{alert_id}", actor=username, content={"alert_id": alert_id, "assignee": assignee}, now_ms=now_ms)
    return visible_alert(tx, alert_id, role, agency_id)
