"""One device's agent: accepts events into the outbox (group commit), delivers them, reports status."""

from __future__ import annotations

import hashlib
import logging
import queue
import shutil
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from edge_agent.clock import now_ms as device_now_ms
from edge_agent.errors import EdgeAgentError, InvalidEvent, OutboxFull
from edge_agent.link import Link
from edge_agent.outbox import Accepted, Draft, Outbox, alarm_record
from protocol.codec import seal_with_body
from protocol.config import DeviceConfig, load_device_config
from protocol.ids import new_event_id
from protocol.messages import DEVICE_MESSAGE_TYPES, LOW_PRIORITY_TYPES, DeviceMessage, type_tag
from protocol.signing import SigningKey

log = logging.getLogger(__name__)

#: Labels the device adds to media metadata: who, which inspection or case, who collected it, what it proves.
CONTEXT_KEYS = ("officer_id", "inspection_id", "case_no", "collector", "proves")
#: Most events stored in one transaction by the accepting thread.
GROUP_COMMIT_MAX = 500
_COMMON = frozenset({"schema", "device_id", "seq", "device_time_ms", "clock_error_ms", "clock_source"})


@dataclass(frozen=True, slots=True)
class Submission:
    """What the device's software hands in: the message type and its own fields."""

    type: str
    fields: dict[str, Any]
    event_id: str | None = None


class Agent:
    """Outbox + link + heartbeat for one device."""

    def __init__(self, config: DeviceConfig, base_dir: Path, *, mqtt_host: str | None = None, mqtt_port: int | None = None) -> None:
        if config.identity is None:
            raise EdgeAgentError("the config has no [identity] table: run the agent with a device bundle's device.toml")
        self.config = config
        self.identity = config.identity
        self.device_id = config.identity.device_id
        self.base_dir = base_dir
        self.key = SigningKey.load(base_dir / config.identity.private_key_file)
        ob = config.outbox
        self.outbox = Outbox(base_dir / ob.path, max_bytes=ob.max_bytes, low_priority_max_bytes=ob.low_priority_max_bytes, max_page_count=ob.sqlite_max_page_count)
        self.alarms: list[str] = []
        self.link = Link(config, self.outbox, mqtt_host=mqtt_host, mqtt_port=mqtt_port, base_dir=base_dir, key=self.key, on_alarm=self._record_alarm)
        self._queue: queue.Queue[tuple[Submission, Future[Accepted]] | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name=f"writer-{self.device_id}", daemon=True)
        self._heartbeat_stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, name=f"heartbeat-{self.device_id}", daemon=True)
        self.started_ms = int(time.time() * 1000)
        # What the device knows about the work under way, added to media metadata (labels practice requires).
        self.context: dict[str, str] = {}

    @classmethod
    def from_config_file(cls, path: str | Path, **kw: Any) -> Agent:
        """An agent for a device bundle's config file."""
        p = Path(path).resolve()
        return cls(load_device_config(p), p.parent, **kw)

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, heartbeat: bool = True) -> None:
        """Start accepting and delivering."""
        self._writer.start()
        if self.outbox.recovery is not None:
            rec = self.outbox.recovery
            self._record_alarm(alarm_record(rec))
            self.submit(
                Submission(
                    "device_alarm",
                    {
                        "alarm": "outbox_corrupt",
                        "detail": f"outbox failed integrity check ({rec.reason}); kept aside as {Path(rec.kept_aside_as).name}",
                        "lost_seq_to": rec.reserved_seq_ceiling or None,
                    },
                )
            )
        self.link.start()
        if heartbeat:
            self._heartbeat.start()

    def stop(self) -> None:
        """Stop; everything unreceipted stays in the outbox for next time."""
        self._heartbeat_stop.set()
        self._queue.put(None)
        self._writer.join(timeout=10)
        self.link.stop()
        if self._heartbeat.is_alive():
            self._heartbeat.join(timeout=5)
        self.outbox.close()

    def _record_alarm(self, line: str) -> None:
        self.alarms.append(line)
        with open(self.outbox.path.with_name(self.outbox.path.name + ".alarms"), "a", encoding="utf-8") as f:
            f.write(line + "\n")

    # ------------------------------------------------------------------ accepting

    def submit(self, sub: Submission, timeout: float = 30.0) -> Accepted:
        """Store one event durably; returns once it is on disk, or raises EdgeAgentError."""
        return self.submit_async(sub).result(timeout=timeout)

    def submit_async(self, sub: Submission) -> Future[Accepted]:
        """Queue one event for the next group commit."""
        fut: Future[Accepted] = Future()
        if sub.type not in _TYPES:
            fut.set_exception(InvalidEvent(f"unknown event type {sub.type!r}; expected one of: {', '.join(sorted(_TYPES))}"))
            return fut
        bad = _COMMON & sub.fields.keys()
        if bad:
            fut.set_exception(InvalidEvent(f"fields {sorted(bad)} are set by the agent, not by the caller"))
            return fut
        self._queue.put((sub, fut))
        self._follow(sub)
        return fut

    def _follow(self, sub: Submission) -> None:
        """Keep the context in step with the inspections the device reports."""
        f = sub.fields
        if sub.type in ("inspection_started", "inspection_joined") and isinstance(f.get("inspection_id"), str):
            self.context.update(inspection_id=f["inspection_id"], officer_id=str(f.get("officer_id", "")))
        elif sub.type == "inspection_ended" and self.context.get("inspection_id") == f.get("inspection_id"):
            self.context.pop("inspection_id", None)

    def set_context(self, **labels: str | None) -> dict[str, str]:
        """Set (or with None clear) context labels: officer_id, inspection_id, case_no, collector, proves."""
        for key, value in labels.items():
            if key not in CONTEXT_KEYS:
                raise InvalidEvent(f"unknown context label {key!r}; expected one of: {', '.join(CONTEXT_KEYS)}")
            if value is None:
                self.context.pop(key, None)
            else:
                self.context[key] = value
        return dict(self.context)

    def _draft(self, sub: Submission, now_ms: int) -> Draft:
        """Validate a submission (InvalidEvent if it breaks the schema) and prepare its signing."""
        clock = self.config.clock
        fmt = self.config.delivery.wire_format
        fields = {
            **sub.fields,
            "type": sub.type,
            "event_id": sub.event_id or new_event_id(now_ms),
            "device_id": self.device_id,
            "seq": 1,  # placeholders until the outbox numbers and links it
            "device_time_ms": now_ms,
            "clock_error_ms": clock.error_ms,
            "clock_source": clock.source,
        }
        try:
            template = msgspec.convert(fields, type=DeviceMessage)
        except msgspec.ValidationError as e:
            raise InvalidEvent(f"{sub.type}: {e}") from None

        def build(seq: int, prev_hash: str | None) -> tuple[str, bytes, str]:
            # Both values are the outbox's own (a positive number, a hex digest): no need to validate again.
            payload, body = seal_with_body(msgspec.structs.replace(template, seq=seq, prev_hash=prev_hash), self.key, fmt)
            return sub.type, payload, hashlib.sha256(body).hexdigest()

        return Draft(event_id=template.event_id, low_priority=sub.type in LOW_PRIORITY_TYPES, build=build)

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < GROUP_COMMIT_MAX:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            self._write_batch(batch)

    def _write_batch(self, batch: list[tuple[Submission, Future[Accepted]]]) -> None:
        now_ms = device_now_ms()  # the device's clock: what it stamps its events with
        drafts: list[Draft] = []
        futures: list[Future[Accepted]] = []
        for sub, fut in batch:
            try:
                draft = self._draft(sub, now_ms)  # validated before the transaction: a bad event must not fail the batch
            except InvalidEvent as e:
                fut.set_exception(e)
                continue
            drafts.append(draft)
            futures.append(fut)
        if not drafts:
            return
        try:
            results = self.outbox.append(drafts)
        except Exception as e:  # storage failure: every caller in the batch hears it, nothing is half-stored
            log.exception("%s: outbox write failed", self.device_id)
            for fut in futures:
                fut.set_exception(EdgeAgentError(f"outbox write failed: {e}"))
            return
        for fut, res in zip(futures, results, strict=True):
            if isinstance(res, OutboxFull):
                fut.set_exception(res)
            else:
                fut.set_result(res)
        self.link.notify()

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """What the local interface and the heartbeat report."""
        oldest = self.outbox.oldest_created_ms()
        now_ms = int(time.time() * 1000)
        counters = self.outbox.counters()
        s = self.link.stats
        return {
            "device_id": self.device_id,
            "model": self.config.model,
            "connected": s.connected,
            "outbox_depth": self.outbox.depth,
            "outbox_bytes": self.outbox.bytes,
            "oldest_unsent_age_s": 0.0 if oldest is None else max(0.0, (now_ms - oldest) / 1000),
            "last_seq": counters["last_seq"],
            "receipted_total": counters["receipted_total"],
            "last_receipt_ms": counters["last_receipt_ms"],
            "inflight": self.link.inflight,
            "published": s.published,
            "broker_acked": s.broker_acked,
            "publish_denied": s.publish_denied,  # refused by the broker (PUBACK reason >= 0x80): not delivered, kept
            "last_denial": s.last_denial,
            "last_refusal": s.last_refusal,  # the broker refuses our login (wrong password, revoked): nothing is delivered
            "resent": s.resent,
            "connects": s.connects,
            "forged_receipts": s.forged_receipts,
            "rejections": list(s.rejections),
            "clock_offset_ms": s.clock_offset_ms,  # from the time exchange only (protocol §8.1)
            "clock_offset_error_ms": s.clock_offset_error_ms,
            "clock_synced_ms": s.clock_synced_ms,
            "time_requests": s.time_requests,
            "time_answers_ignored": s.time_answers_ignored,
            "free_storage_bytes": shutil.disk_usage(self.outbox.path.parent).free,
            "alarms": list(self.alarms),
            "config_version": self.config.config_version,
            "context": dict(self.context),
        }

    def _heartbeat_loop(self) -> None:
        while not self._heartbeat_stop.wait(self.config.status.heartbeat_s):
            st = self.status()
            fields = {
                "outbox_depth": st["outbox_depth"],
                "oldest_unsent_age_s": st["oldest_unsent_age_s"],
                "free_storage_bytes": st["free_storage_bytes"],
                "clock_offset_ms": st["clock_offset_ms"],
                "config_version": st["config_version"],
                "firmware": f"fe-agent/{self.config.model}",
            }
            try:
                self.submit(Submission("device_status", fields))
            except OutboxFull as e:
                log.warning("%s: heartbeat not stored: %s", self.device_id, e)


_TYPES = frozenset(type_tag(t) for t in DEVICE_MESSAGE_TYPES)
