"""Applies stored device events to the inspection registers, inside the ingest's transaction.

What a device says happened (a scan, an inspection started, joined or ended, a provisional decision, a
heartbeat, an alarm) becomes rows in ``scans``, ``inspections``, ``alerts`` and ``device_state``, and
may produce notices for the device (a ScanDecision), published after the commit. The event chain is checked
where events are stored (server/ingest/store.py ``check_links``), not here.
"""

from __future__ import annotations

import uuid

import msgspec

from protocol.decision import Decision, Policy
from protocol.messages import (
    DeviceAlarm,
    DeviceMessage,
    DeviceStatus,
    EnterpriseScanned,
    InspectionEnded,
    InspectionJoined,
    InspectionStarted,
    MediaCaptured,
    MediaIntegrity,
    ProvisionalDecision,
    ScanDecision,
)
from server.rules.alerts import raise_alert
from server.rules.scanning import ScanConflict, ScanRequest, credential_of, decide_scan, end_part, lock_inspection, recorded_decision
from server.storage import inspections as rows
from server.storage import projection
from server.storage.engine import Tx


def scan_notice(device_id: str, scan_id: str, d: Decision, now_ms: int) -> ScanDecision:
    """The ScanDecision message for a decision."""
    return ScanDecision(
        message_id=str(uuid.uuid4()),
        device_id=device_id,
        server_time_ms=now_ms,
        scan_event_id=scan_id,
        outcome=d.outcome,
        code=d.code,
        message_zh=d.message_zh,
        message_en=d.message_en,
        inspection_id=d.inspection_id,
        joined_agency_id=d.joined_agency_id,
        exception_used=d.exception_used,
        warnings=d.warnings,
    )


class Projector:
    """Turns device events into register rows; one instance per ingest writer."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def stored(self, con: Tx, msg: DeviceMessage, now_ms: int) -> list[ScanDecision]:
        """Apply a newly stored event, inside the ingest's transaction; returns notices for its device."""
        match msg:
            case EnterpriseScanned():
                req = ScanRequest(
                    scan_id=msg.event_id, channel="terminal", officer_id=msg.officer_id, code_text=msg.code_text, field=msg.field,
                    scanned_ms=msg.device_time_ms, matter=msg.matter, reason=msg.reason, exception=msg.exception_basis,
                    location=msg.location, device_id=msg.device_id,
                )  # fmt: skip
                try:
                    d = decide_scan(con, req, self.policy, now_ms)
                except ScanConflict as e:
                    # An event id that another scan already used: never answer with that scan's decision.
                    raise_alert(con, "scan_id_conflict", now_ms, f"设备 {msg.device_id} 的扫码事件与已有扫码记录编号冲突，未予判定：{e}", f"A scan event of device {msg.device_id} reuses another scan's id and was not decided: {e}", device_id=msg.device_id, officer_id=msg.officer_id, ref=msg.event_id)
                    return []
                self._compare_provisional(con, msg.event_id, d, now_ms)
                return [scan_notice(msg.device_id, msg.event_id, d, now_ms)]
            case ProvisionalDecision():
                projection.add_provisional(
                    con, scan_id=msg.scan_event_id, device_id=msg.device_id, outcome=msg.outcome, code=msg.code, snapshot_version=msg.snapshot_version, received_ms=now_ms
                )
                projection.lock_comparison(con, msg.scan_event_id)
                d = recorded_decision(con, msg.scan_event_id)
                if d is not None:
                    self._compare_provisional(con, msg.scan_event_id, d, now_ms)
            case InspectionStarted() | InspectionJoined():
                self._participate(con, msg, now_ms)
            case InspectionEnded():
                inspection_id = self._resolve(con, msg.inspection_id)
                if inspection_id is None or not end_part(con, inspection_id, msg.officer_id, msg.result, msg.summary, now_ms):
                    raise_alert(
                        con, "unknown_inspection", now_ms,
                        f"设备 {msg.device_id} 报告结束的检查 {msg.inspection_id} 没有对应的扫码记录或已结束。",
                        f"Device {msg.device_id} ended inspection {msg.inspection_id}, which has no scan or already ended.",
                        device_id=msg.device_id, officer_id=msg.officer_id, ref=msg.inspection_id,
                    )  # fmt: skip
            case MediaCaptured():
                ended_ms = msg.ended_ms
                if ended_ms is None and msg.started_ms is not None and msg.duration_ms is not None:
                    ended_ms = msg.started_ms + msg.duration_ms
                rec = projection.Recording(
                    event_id=msg.event_id, device_id=msg.device_id, officer_id=msg.officer_id,
                    inspection_id=self._resolve(con, msg.inspection_id) or msg.inspection_id if msg.inspection_id else None,
                    case_no=msg.case_no, file_name=msg.file_name, media_kind=msg.media_kind, sha256=msg.sha256, size_bytes=msg.size_bytes,
                    started_ms=msg.started_ms, ended_ms=ended_ms,
                )  # fmt: skip
                projection.add_recording(con, rec)
            case MediaIntegrity():
                projection.mark_integrity(con, msg.media_event_id, msg.problem, now_ms)
                what_zh = "被修改" if msg.problem == "modified" else "被删除"
                raise_alert(
                    con, "media_integrity", now_ms,
                    f"设备 {msg.device_id} 上的录音录像文件 {msg.file_name} 在上报哈希后{what_zh}（原 SHA-256 {msg.sha256_expected[:16]}…）。",
                    f"Recording {msg.file_name} on device {msg.device_id} was {msg.problem} after its hash was sent (SHA-256 {msg.sha256_expected[:16]}…).",
                    device_id=msg.device_id, ref=msg.media_event_id,
                )  # fmt: skip
            case DeviceStatus():
                projection.set_device_status(con, msg.device_id, msgspec.json.encode(msg).decode())
            case DeviceAlarm():
                raise_alert(
                    con, "device_alarm", now_ms,
                    f"设备 {msg.device_id} 告警：{msg.alarm}（{msg.detail}）", f"Device {msg.device_id} alarm: {msg.alarm} ({msg.detail})",
                    device_id=msg.device_id, ref=msg.event_id,
                )  # fmt: skip
        return []

    def duplicate(self, db: Tx, msg: DeviceMessage, now_ms: int) -> list[ScanDecision]:
        """A resent event: answer a scan again with its recorded decision (the first answer may be lost)."""
        if isinstance(msg, EnterpriseScanned):
            d = recorded_decision(db, msg.event_id)
            if d is not None:
                return [scan_notice(msg.device_id, msg.event_id, d, now_ms)]
        return []

    def _resolve(self, con: Tx, inspection_id: str) -> str | None:
        """The server's inspection id for an id a device used: the inspection's own, or a scan's (decided offline)."""
        if rows.inspection_exists(con, inspection_id):
            return inspection_id
        return rows.scan_inspection(con, inspection_id) or None

    def _participate(self, con: Tx, msg: InspectionStarted | InspectionJoined, now_ms: int) -> None:
        inspection_id = self._resolve(con, msg.inspection_id)
        if inspection_id is None and msg.scan_event_id:
            inspection_id = self._resolve(con, msg.scan_event_id)
        if inspection_id is None:
            raise_alert(
                con, "inspection_without_scan", now_ms,
                f"设备 {msg.device_id} 报告了没有扫码决定的检查 {msg.inspection_id}（执法人员 {msg.officer_id}）：未经扫码的检查不合规。",
                f"Device {msg.device_id} reported inspection {msg.inspection_id} by officer {msg.officer_id} with no scan decision behind it.",
                device_id=msg.device_id, officer_id=msg.officer_id, agency_id=msg.agency_id, ref=msg.inspection_id,
            )  # fmt: skip
            return
        lock_inspection(con, inspection_id)  # a part joins under the lock its inspection ends under
        cred = credential_of(con, msg.officer_id)
        part = rows.Part(
            inspection_id=inspection_id, officer_id=msg.officer_id, agency_id=cred.agency_id if cred else msg.agency_id, field=msg.field, matter=msg.matter,
            scan_id=msg.scan_event_id, device_id=msg.device_id, joined_ms=now_ms,
        )  # fmt: skip
        rows.add_part(con, part)

    def _compare_provisional(self, con: Tx, scan_id: str, d: Decision, now_ms: int) -> None:
        """Compare the terminal's offline decision on this scan, if it has arrived, with the server's; alert if overturned."""
        projection.lock_comparison(con, scan_id)
        local = projection.uncompared_provisional(con, scan_id)
        if local is None:
            return
        overturned = local.outcome != d.outcome
        projection.mark_compared(con, scan_id, overturned=overturned, now_ms=now_ms)
        if overturned:
            officer_id, credit_code = projection.scan_who(con, scan_id)
            raise_alert(
                con, "provisional_overturned", now_ms,
                f"终端 {local.device_id} 离线判定为“{local.outcome}”（{local.code}），平台复核为“{d.outcome}”（{d.code}）：{d.message_zh}",
                f"Terminal {local.device_id} decided offline '{local.outcome}' ({local.code}); the server decided '{d.outcome}' ({d.code}): {d.message_en}",
                device_id=local.device_id, officer_id=officer_id, credit_code=credit_code, ref=scan_id,
            )  # fmt: skip
