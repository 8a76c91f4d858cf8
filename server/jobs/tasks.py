"""The scheduled supervision jobs: each a plain function of (transaction, context, now), so tests drive
them with a controllable clock and the scheduler only decides when they run (their rows: server/storage/jobs.py).

- devices:    mark devices offline after missed heartbeats; alert on a growing backlog
- draws:      perform random draws whose time has come (双随机)
- disclosure: alert before disclosure deadlines and on misses (行政执法公示)
- tree_head:  the daily signed tree head of the evidence log
- sampling:   last month's case-file sample per agency (案卷评查)
- retention:  remove what the retention policy allows, and only that
- supervision: supervision letters past their deadline
- case_reviews: legal reviews past their deadline; cases near or past their own decision deadline
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from protocol.decision import Policy
from protocol.signing import SigningKey
from server.rules.alerts import raise_alert
from server.evidence.coverage import check_ended_recordings
from server.jobs.disclosure import check_deadlines, sample_case_files
from server.jobs.draws import perform_due_draws
from server.evidence.log import sign_tree_head
from server.storage import jobs as stored
from server.storage.engine import Tx

DAY_MS = 86_400_000


class JobSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The jobs' numbers."""

    # A device is offline after this many heartbeat periods without a message (heartbeat period by kind).
    missed_heartbeats: int = 3
    heartbeat_s: dict[str, float] = msgspec.field(default_factory=lambda: {"body_recorder": 60.0, "qr_terminal": 120.0, "phone": 300.0})
    backlog_events: int = 1000  # alert when a device reports more unsent events than this
    backlog_age_s: float = 3600.0  # ... or an unsent event older than this
    # Retention: heartbeats and messages kept aside are removed after these many days. Nothing else is:
    # scans, inspections and media records are evidence and are kept.
    keep_status_days: int = 90
    keep_rejected_days: int = 180


@dataclass(frozen=True, slots=True)
class JobContext:
    """What jobs need besides the database and the time."""

    key: SigningKey
    policy: Policy
    settings: JobSettings


def _alert_once(tx: Tx, kind: str, device_id: str, since_ms: int, now_ms: int, zh: str, en: str) -> bool:
    """Raise an alert unless the same one was raised for this device since ``since_ms``."""
    if stored.device_alerted_since(tx, kind, device_id, since_ms):
        return False
    raise_alert(tx, kind, now_ms, zh, en, device_id=device_id)
    return True


def check_devices(tx: Tx, ctx: JobContext, now_ms: int) -> dict[str, Any]:
    """Offline devices (missed heartbeats) and devices whose backlog grows."""
    s = ctx.settings
    offline = backlog = 0
    for device_id, kind, last_seen, online, presence_ms, status_json in stored.devices_to_check(tx):
        period_ms = int(s.heartbeat_s.get(kind, 300.0) * 1000)
        seen = max(last_seen or 0, presence_ms or 0)
        silent = now_ms - seen > s.missed_heartbeats * period_ms
        if silent and online:
            stored.mark_offline(tx, device_id)
        if silent or not online:
            if _alert_once(
                tx, "device_offline", device_id, seen, now_ms,
                f"设备 {device_id} 已离线（最后联系 {round((now_ms - seen) / 60000)} 分钟前）。",
                f"Device {device_id} is offline (last heard from {round((now_ms - seen) / 60000)} minutes ago).",
            ):  # fmt: skip
                offline += 1
        if status_json:
            st = json.loads(status_json)
            if st.get("outbox_depth", 0) > s.backlog_events or st.get("oldest_unsent_age_s", 0) > s.backlog_age_s:
                if _alert_once(
                    tx, "device_backlog", device_id, now_ms - DAY_MS, now_ms,
                    f"设备 {device_id} 积压 {st.get('outbox_depth')} 条未送达事件，最早一条已等待 {round(st.get('oldest_unsent_age_s', 0) / 60)} 分钟。",
                    f"Device {device_id} has {st.get('outbox_depth')} events waiting; the oldest for {round(st.get('oldest_unsent_age_s', 0) / 60)} minutes.",
                ):  # fmt: skip
                    backlog += 1
    return {"offline_alerts": offline, "backlog_alerts": backlog}


def draws(con: Tx, ctx: JobContext, now_ms: int) -> dict[str, Any]:
    """Perform the draws whose time has come."""
    return {"drawn": perform_due_draws(con, ctx.policy, now_ms)}


def disclosure(con: Tx, ctx: JobContext, now_ms: int) -> dict[str, Any]:
    """Alert on disclosure deadlines coming up and missed."""
    return check_deadlines(con, now_ms)


def tree_head(con: Tx, ctx: JobContext, now_ms: int) -> dict[str, Any]:
    """The daily signed tree head."""
    head = sign_tree_head(con, ctx.key, now_ms)  # type: ignore[arg-type]  # evidence.py still names sqlite3
    return {"tree_size": head.tree_size, "root_hash": head.root_hash}


def sampling(con: Tx, ctx: JobContext, now_ms: int) -> dict[str, Any]:
    """Last month's case-file samples."""
    return {"samples": sample_case_files(con, now_ms)}


def retention(tx: Tx, ctx: JobContext, now_ms: int) -> dict[str, Any]:
    """Remove old heartbeats and rejected messages, and nothing else (no evidence of a case is a heartbeat).

    Removing a logged record leaves its leaf in the evidence log and writes why it went to
    ``retention_removed``, so ``fe-server verify`` tells a removal by policy from tampering.
    """
    s = ctx.settings
    removed = stored.remove_status_events(tx, now_ms - s.keep_status_days * DAY_MS, now_ms, f"device_status older than {s.keep_status_days} days")
    rejected = stored.remove_rejected(tx, now_ms - s.keep_rejected_days * DAY_MS)
    return {"status_events_removed": removed, "rejected_removed": rejected}


def recording(con: Tx, ctx: JobContext, now_ms: int) -> dict[str, Any]:
    """Alert on ended inspections not recorded from start to end (执法全过程记录), after a grace period."""
    return check_ended_recordings(con, now_ms, int(ctx.policy.recording_grace_minutes * 60_000))


def supervision(tx: Tx, ctx: JobContext, now_ms: int) -> dict[str, Any]:
    """Supervision letters past their deadline without a report: marked overdue and alerted, once each."""
    from server.supervision.workflow import check_deadlines

    return check_deadlines(tx, now_ms)


def case_reviews(tx: Tx, ctx: JobContext, now_ms: int) -> dict[str, Any]:
    """Legal reviews of cases past their deadline: alerted to their agency and recorded on the case, once each; and
    cases not yet decided near their own decision deadline or past it, once per case and deadline."""
    from server.cases import deadlines
    from server.cases import policy as case_policy
    from server.cases.review import check_deadlines

    return {**check_deadlines(tx, now_ms), **deadlines.check(tx, now_ms, case_policy.of(ctx.policy))}


#: Every job: id -> (function, trigger arguments for APScheduler, description zh, description en).
JOBS: dict[str, tuple[Callable[[Tx, JobContext, int], dict[str, Any]], dict[str, Any], str, str]] = {
    "devices": (check_devices, {"trigger": "interval", "minutes": 1}, "设备在线与积压检查", "Device presence and backlog"),
    "recording": (recording, {"trigger": "interval", "minutes": 1}, "执法全过程记录检查", "Full-process recording"),
    "draws": (draws, {"trigger": "interval", "minutes": 1}, "双随机抽取", "Random draws"),
    "disclosure": (disclosure, {"trigger": "cron", "hour": "8,16", "minute": 5}, "执法公示期限提醒", "Disclosure deadlines"),
    "tree_head": (tree_head, {"trigger": "cron", "hour": 0, "minute": 10}, "证据日志每日签名树头", "Daily signed tree head"),
    "sampling": (sampling, {"trigger": "cron", "day": 1, "hour": 2, "minute": 0}, "案卷评查抽样", "Case-file sampling"),
    "supervision": (supervision, {"trigger": "cron", "hour": "8,16", "minute": 15}, "监督文书整改期限检查", "Supervision letter deadlines"),
    "case_reviews": (case_reviews, {"trigger": "cron", "hour": "8,16", "minute": 20}, "案件法制审核与办案期限检查", "Legal review and decision deadlines of cases"),
    "retention": (retention, {"trigger": "cron", "hour": 3, "minute": 30}, "数据保留期清理", "Retention"),
}
