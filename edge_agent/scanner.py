"""Scanning at a terminal: record the scan, ask the server, and decide from the snapshot when it is silent.

The scan is recorded first (an EnterpriseScanned event through the outbox), so it is never lost. The
server answers with a ScanDecision; if none arrives within the policy's timeout, the terminal decides
from the newest complete DecisionSnapshot with the same rules (``protocol.decision``), shows the answer
as provisional, and records a ProvisionalDecision event; the server decides again when the scan
arrives and raises an alert where the two differ.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from edge_agent.agent import Agent, Submission
from edge_agent.errors import EdgeAgentError
from protocol import enterprise_code
from protocol.codec import encode
from protocol.decision import Decision, Enterprise, Facts, Policy, decide, refuse_code
from protocol.ids import new_event_id
from protocol.messages import DecisionSnapshot, ExceptionBasis, NoDisturbEntry, ScanDecision
from protocol.signing import VerifyKey

log = logging.getLogger(__name__)

#: How long to wait for the server's decision when no snapshot says otherwise.
DEFAULT_ONLINE_TIMEOUT_S = 3.0
SNAPSHOT_FILE = "decision_snapshot.json"


class ScanError(EdgeAgentError):
    """A scan that could not be made (no code in the photo, bad input)."""

    code = "scan_error"


class SnapshotStore:
    """Assembles snapshot parts (newest version wins) and keeps the complete one on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._parts: dict[int, dict[int, DecisionSnapshot]] = {}
        self.current: list[DecisionSnapshot] = []
        if path.exists():
            try:
                self.current = msgspec.json.decode(path.read_bytes(), type=list[DecisionSnapshot])
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                log.error("snapshot file %s is unreadable (%s); waiting for a new one", path, e)

    @property
    def version(self) -> int:
        """Version of the complete snapshot in use (0: none)."""
        return self.current[0].version if self.current else 0

    def add(self, part: DecisionSnapshot) -> None:
        """Take one verified part; when a newer version is complete, it replaces the current one."""
        with self._lock:
            if part.version <= self.version:
                return
            parts = self._parts.setdefault(part.version, {})
            parts[part.part] = part
            for old in [v for v in self._parts if v < part.version]:
                del self._parts[old]
            if len(parts) == part.parts and set(parts) == set(range(1, part.parts + 1)):
                self.current = [parts[i] for i in range(1, part.parts + 1)]
                del self._parts[part.version]
                tmp = self.path.with_suffix(".tmp")
                tmp.write_bytes(encode(self.current))
                tmp.replace(self.path)
                log.info("decision snapshot version %d complete (%d parts)", part.version, part.parts)

    def facts(self, officer_id: str, credit_code: str, field: str, matter: str, exception: ExceptionBasis | None, now_ms: int) -> Facts:
        """What the snapshot tells about this scan."""
        snap = self.current
        cred = next((c for p in snap for c in p.credentials if c.officer_id == officer_id), None)
        nd = next((n for p in snap for n in p.no_disturb if n.credit_code == credit_code), None)
        return Facts(
            now_ms=now_ms,
            officer_id=officer_id,
            credential=cred,
            credit_code=credit_code,
            # A validly signed code proves the enterprise is registered; its band and counts are not known here.
            enterprise=Enterprise(credit_code=credit_code, name=credit_code),
            field=field,
            matter=matter,
            no_disturb=NoDisturbEntry(credit_code=nd.credit_code, basis=nd.basis, valid_to_ms=nd.valid_to_ms) if nd else None,
            open_inspections=[i for p in snap for i in p.open_inspections if i.credit_code == credit_code],
            recent_inspections=[i for p in snap for i in p.recent_inspections if i.credit_code == credit_code],
            exception=exception,
            exception_ok=None,  # cannot be checked offline: taken as stated, checked by the server later
        )

    def policy(self) -> Policy:
        """The policy numbers from the snapshot (the cap is not applied offline: counts are unknown here)."""
        if not self.current:
            return Policy()
        p = self.current[0].policy
        return Policy(repeat_window_days=p.repeat_window_days, join_window_hours=p.join_window_hours, online_timeout_s=p.online_timeout_s, default_cap_per_year=10**6)


class Scanner:
    """Scans for one agent."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.snapshots = SnapshotStore(agent.base_dir / SNAPSHOT_FILE)
        self._decisions: dict[str, ScanDecision] = {}
        self._cond = threading.Condition()
        agent.link.on(ScanDecision, self._on_decision)
        agent.link.on(DecisionSnapshot, self.snapshots.add)

    def _on_decision(self, d: ScanDecision) -> None:
        with self._cond:
            self._decisions[d.scan_event_id] = d
            if len(self._decisions) > 1000:  # answers nobody waited for
                del self._decisions[next(iter(self._decisions))]
            self._cond.notify_all()

    def scan(
        self,
        officer_id: str,
        field: str,
        *,
        code_text: str | None = None,
        image: bytes | None = None,
        matter: str = "",
        reason: str = "",
        exception: ExceptionBasis | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Record a scan and return the decision (the server's, or a provisional one from the snapshot)."""
        if (code_text is None) == (image is None):
            raise ScanError("give exactly one of a code's text and a photo")
        if image is not None:
            from protocol.qrphoto import PhotoError, decode_photo

            try:
                code_text = decode_photo(image)
            except PhotoError as e:
                raise ScanError(f"no enterprise code could be read from the photo ({e.reason}): {e}") from None
        assert code_text is not None
        scan_id = new_event_id()
        fields: dict[str, Any] = {"officer_id": officer_id, "code_text": code_text, "field": field, "matter": matter, "reason": reason}
        if exception is not None:
            fields["exception_basis"] = msgspec.to_builtins(exception)
        self.agent.submit(Submission("enterprise_scanned", fields, scan_id))
        wait = timeout_s if timeout_s is not None else self.snapshots.policy().online_timeout_s if self.snapshots.current else DEFAULT_ONLINE_TIMEOUT_S
        deadline = time.monotonic() + wait
        with self._cond:
            while scan_id not in self._decisions and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            answer = self._decisions.pop(scan_id, None)
        if answer is not None:
            return {"scan_id": scan_id, "provisional": False, **{k: v for k, v in msgspec.to_builtins(answer).items() if k not in ("type", "device_id", "message_id", "schema")}}
        d = self._decide_offline(officer_id, code_text, field, matter, exception)
        self.agent.submit(
            Submission(
                "provisional_decision",
                {"scan_event_id": scan_id, "outcome": d.outcome, "code": d.code, "snapshot_version": self.snapshots.version, "inspection_id": d.inspection_id},
            )
        )
        out = msgspec.to_builtins(d)
        out.update(scan_id=scan_id, scan_event_id=scan_id, provisional=True, snapshot_version=self.snapshots.version)
        if d.outcome == "allowed":
            out["inspection_id"] = scan_id  # provisional id; the server maps it to its inspection
        return out

    def _decide_offline(self, officer_id: str, code_text: str, field: str, matter: str, exception: ExceptionBasis | None) -> Decision:
        if not self.snapshots.current:
            return Decision(
                outcome="refused",
                code="offline_no_snapshot",
                message_zh="无法连接平台，且本终端尚无离线名单，无法判定；请联网后重试。",
                message_en="The server cannot be reached and this terminal has no offline snapshot yet: retry when online.",
            )
        keys = {kid: VerifyKey.from_hex(pub) for kid, pub in self.snapshots.current[0].code_keys.items()}
        try:
            parsed = enterprise_code.verify(code_text, keys)
        except enterprise_code.CodeError as e:
            return refuse_code(e.reason)
        if f"{parsed.credit_code}:{parsed.issued:%Y%m%d}" in {r for p in self.snapshots.current for r in p.revoked_codes}:
            return refuse_code("revoked")
        facts = self.snapshots.facts(officer_id, parsed.credit_code, field, matter, exception, int(time.time() * 1000))
        return decide(facts, self.snapshots.policy())
