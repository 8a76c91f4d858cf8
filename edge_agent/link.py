"""The MQTT link: publishes the outbox in sequence order with a bounded window, resends, takes receipts.

paho's own queue is memory, a buffer and never storage: an event leaves the outbox only when a receipt
signed by the server names it. paho callbacks run on paho's thread; they only hand work to the sender
thread, which alone touches the outbox for sending and receipts.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.clock import now_ms
from edge_agent.outbox import Outbox
from protocol import topics
from protocol.codec import ProtocolError, open_server_message, seal
from protocol.config import DeviceConfig
from protocol.messages import Receipt, Rejection, TimeRequest, TimeResponse
from protocol.signing import SigningKey, VerifyKey
from protocol.timesync import MESSAGE_EXPIRY_S, estimate

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The broker keeps the device's session (and receipts for it) this long while it is offline.
SESSION_EXPIRY_S = 7 * 24 * 3600
#: Rows read from the outbox per query when filling the window.
FETCH_BATCH = 200
#: A successful time exchange is repeated this often (the clock drifts).
TIME_SYNC_INTERVAL_S = 600.0
#: A time request not answered in this long is made again, with a new nonce (doubling while none is answered).
TIME_RETRY_S = 10.0
#: Publishes remembered by message id, to tell which topic a PUBACK answers (bounded: old ids are dropped).
MIDS_KEPT = 10_000


@dataclass(slots=True)
class _InFlight:
    event_id: str
    payload: bytes
    due: float
    attempts: int = 1


@dataclass(slots=True)
class LinkStats:
    """Counters the status page shows."""

    connected: bool = False
    connects: int = 0
    published: int = 0
    broker_acked: int = 0  # PUBACKs: the broker has it, which is not proof of storage
    resent: int = 0
    receipts: int = 0
    receipted_events: int = 0
    forged_receipts: int = 0
    rejections: list[dict[str, object]] = field(default_factory=list)
    last_receipt_ms: int | None = None
    # Set only by the time exchange (§8.1): server time minus device time, ± its error, and when it was measured.
    clock_offset_ms: int | None = None
    clock_offset_error_ms: int | None = None
    clock_synced_ms: int | None = None
    time_requests: int = 0
    time_answers_ignored: int = 0  # stale, unknown nonce, or too slow a round trip
    publish_denied: int = 0  # PUBACKs with a reason code of 0x80 or more: NOT delivered, the event stays
    last_denial: dict[str, object] | None = None
    last_refusal: dict[str, object] | None = None  # the broker's latest refusal of our login, until one is accepted


class Link:
    """One device's connection to the broker and its delivery loop."""

    def __init__(
        self,
        config: DeviceConfig,
        outbox: Outbox,
        *,
        mqtt_host: str | None = None,
        mqtt_port: int | None = None,
        base_dir: Path | None = None,
        key: SigningKey | None = None,
        on_alarm: Callable[[str], None] | None = None,
    ) -> None:
        if config.identity is None:
            raise ValueError("the config has no [identity]: only a device bundle's config can run the agent")
        self.config = config
        self.device_id = config.identity.device_id
        self.outbox = outbox
        self.server_key = VerifyKey.from_hex(config.identity.server_public_key)
        self.stats = LinkStats()
        self._host = mqtt_host or config.mqtt.host
        self._port = mqtt_port or config.mqtt.port
        # The bundle's folder: TLS file names in the config are relative to it.
        self._base_dir = base_dir if base_dir is not None else outbox.path.parent
        self._inflight: dict[int, _InFlight] = {}
        self._cursor = 0
        self._inbox: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"link-{self.device_id}", daemon=True)
        self._client = self._make_client()
        # Other server messages (scan decisions, snapshots) go to whoever registered for their type.
        self._handlers: dict[type, Callable[[Any], None]] = {}
        self._key = key  # signs time requests; without it the agent makes none
        self._on_alarm = on_alarm
        self._time_request: tuple[str, int] | None = None  # (nonce, t1) of the latest request
        self._next_time_sync = 0.0  # monotonic
        self._time_misses = 0  # requests in a row without a usable answer
        self._clock_alarmed = False  # an alarm said the clock is further off than its stated error
        self._mids: dict[int, str] = {}  # message id -> topic of our QoS 1 publishes awaiting PUBACK
        self._denials_seen: set[tuple[str, int]] = set()  # (topic kind, reason code) already alarmed
        self._refusals_seen: set[str] = set()  # reasons of refused logins already alarmed since the last accepted one

    def on(self, message_type: type[T], handler: Callable[[T], None]) -> None:
        """Have ``handler`` called (on the sender thread) with every verified message of that type."""
        self._handlers[message_type] = handler

    # ------------------------------------------------------------------ paho side

    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=self.device_id, protocol=MQTTProtocolVersion.MQTTv5)
        c.enable_logger(logging.getLogger(f"paho.{self.device_id}"))
        m = self.config.mqtt
        if m.username:  # the device's broker account; the broker makes the username its client id
            c.username_pw_set(m.username, m.password or None)
        if m.ca_file:  # TLS: verify the broker's certificate (and host name) against the project CA
            cert = str(self._base_dir / m.cert_file) if m.cert_file else None
            key = str(self._base_dir / m.key_file) if m.key_file else None
            c.tls_set(ca_certs=str(self._base_dir / m.ca_file), certfile=cert, keyfile=key)
        c.max_inflight_messages_set(self.config.delivery.mqtt_inflight)
        c.max_queued_messages_set(0)  # bounded by our receipt window instead
        c.reconnect_delay_set(int(max(1, self.config.mqtt.reconnect_min_s)), int(max(1, self.config.mqtt.reconnect_max_s)))
        c.will_set(topics.device_presence(self.device_id), b"offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        return c

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason_code: object, properties: object) -> None:
        if getattr(reason_code, "is_failure", False):
            # Wrong credentials, a revoked account, a broker that will not have us: nothing gets delivered
            # until a person acts, so say so once per reason (paho keeps retrying meanwhile).
            log.warning("%s: broker refused the connection: %s", self.device_id, reason_code)
            self.stats.last_refusal = {"reason_code": int(getattr(reason_code, "value", 0)), "reason": str(reason_code), "time_ms": int(time.time() * 1000)}
            if str(reason_code) not in self._refusals_seen:
                self._refusals_seen.add(str(reason_code))
                log.error("ALARM %s: the broker refuses the device's login: %s", self.device_id, reason_code)
                if self._on_alarm is not None:
                    self._on_alarm(json.dumps({"alarm": "connect_refused", **self.stats.last_refusal}, ensure_ascii=False))
            return
        self._refusals_seen.clear()  # accepted again: a later refusal is news
        self.stats.last_refusal = None
        client.subscribe(topics.device_down(self.device_id), qos=1)
        client.publish(topics.device_presence(self.device_id), b"online", qos=1, retain=True)
        self._inbox.put(("connected", None))
        self._wake.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: object, properties: object) -> None:
        self._inbox.put(("disconnected", str(reason_code)))
        self._wake.set()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: object, properties: object) -> None:
        topic = self._mids.pop(mid, "")  # "" for a publish not made through _publish (presence)
        if not getattr(reason_code, "is_failure", False):
            self.stats.broker_acked += 1
            return
        # MQTT v5: the broker refused the message (ACL, quota, size...). It was NOT delivered: the event stays in
        # the outbox and is resent on the normal schedule, so it goes through once the cause is fixed.
        code = int(getattr(reason_code, "value", 0x80))
        self.stats.publish_denied += 1
        self.stats.last_denial = {"topic": topic, "reason_code": code, "reason": str(reason_code), "time_ms": int(time.time() * 1000)}
        kind = (topic.rsplit("/", 1)[-1] or "other", code)
        if kind not in self._denials_seen:  # one alarm per kind of denial, not one per message
            self._denials_seen.add(kind)
            kept = "; the event stays in the outbox and is resent" if kind[0] == "up" else ""
            log.error("ALARM %s: the broker refused a publish on %s: %s (0x%02x), not delivered%s", self.device_id, topic, reason_code, code, kept)
            if self._on_alarm is not None:
                self._on_alarm(json.dumps({"alarm": "publish_denied", **self.stats.last_denial}, ensure_ascii=False))

    def _publish(self, topic: str, payload: bytes, properties: Properties | None = None) -> mqtt.MQTTMessageInfo:
        """QoS 1 publish, remembering its message id to read its PUBACK."""
        info = self._client.publish(topic, payload, qos=1, properties=properties)
        self._mids[info.mid] = topic
        if len(self._mids) > MIDS_KEPT:
            self._mids.pop(next(iter(self._mids)), None)
        return info

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put(("message", bytes(msg.payload)))
        self._wake.set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect in the background and start delivering."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(self._host, self._port, keepalive=self.config.mqtt.keepalive_s, clean_start=False, properties=props)
        self._client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        """Disconnect and stop; unreceipted events stay in the outbox."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        try:
            if self._client.is_connected():
                # A clean disconnect suppresses the last will, so say "offline" ourselves.
                info = self._client.publish(topics.device_presence(self.device_id), b"offline", qos=1, retain=True)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    try:
                        info.wait_for_publish(timeout=2)
                    except RuntimeError:  # the connection dropped meanwhile: the broker's will says it instead
                        pass
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def notify(self) -> None:
        """New events were accepted: fill the window."""
        self._wake.set()

    @property
    def inflight(self) -> int:
        """Events published and not yet receipted."""
        return len(self._inflight)

    # ------------------------------------------------------------------ the sender thread

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.25)
            self._wake.clear()
            try:
                self._drain_inbox()
                if self.stats.connected:
                    self._sync_time_if_due()
                    self._resend_due()
                    self._fill_window()
            except Exception:  # the loop must survive anything one event can cause; it is logged, not hidden
                log.exception("%s: delivery loop error", self.device_id)
                time.sleep(0.5)

    def _drain_inbox(self) -> None:
        while True:
            try:
                kind, data = self._inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "connected":
                self.stats.connected = True
                self.stats.connects += 1
                # Whatever was in flight may be lost with the old connection: send everything again, oldest first.
                self._inflight.clear()
                self._cursor = 0
                self._next_time_sync = 0.0  # a new connection: learn the server's time first
            elif kind == "disconnected":
                self.stats.connected = False
                log.info("%s: disconnected (%s)", self.device_id, data)
            elif kind == "message":
                assert isinstance(data, bytes)
                self._handle_server_message(data)

    def _handle_server_message(self, payload: bytes) -> None:
        try:
            msg = open_server_message(payload, self.server_key)
        except ProtocolError as e:
            self.stats.forged_receipts += 1
            log.error("ALARM %s: refused a message on its receipt topic (%s): %s", self.device_id, e.code, e)
            return
        if msg.device_id != self.device_id:
            self.stats.forged_receipts += 1
            log.error("ALARM %s: refused a server message addressed to %s", self.device_id, msg.device_id)
            return
        # Receipts and other notices may have waited days in the broker session: their server_time_ms never
        # sets the clock. Only the answer to the latest time request does.
        match msg:
            case Receipt(items=items):
                pairs = [(i.seq, i.event_id) for i in items]
                removed = self.outbox.remove_receipted(pairs)
                for seq, event_id in pairs:
                    f = self._inflight.get(seq)
                    if f is not None and f.event_id == event_id:
                        del self._inflight[seq]
                self.stats.receipts += 1
                self.stats.receipted_events += removed
                self.stats.last_receipt_ms = int(time.time() * 1000)
            case Rejection(items=items):
                for item in items:
                    log.error("ALARM %s: server rejected event %s (seq %s): %s", self.device_id, item.event_id, item.seq, item.reason)
                    self.stats.rejections.append({"event_id": item.event_id, "seq": item.seq, "reason_code": item.reason_code, "reason": item.reason})
                del self.stats.rejections[:-100]
            case TimeResponse():
                self._take_time(msg)
            case _ if type(msg) in self._handlers:
                self._handlers[type(msg)](msg)
            case _:
                log.info("%s: server message %s not handled by this agent version", self.device_id, type(msg).__name__)

    def _backoff(self, attempts: int) -> float:
        d = self.config.delivery
        return min(d.resend_after_s * (2 ** (attempts - 1)), d.resend_max_backoff_s)

    def _resend_due(self) -> None:
        now = time.monotonic()
        topic = topics.device_up(self.device_id)
        for seq in sorted(s for s, f in self._inflight.items() if f.due <= now):
            f = self._inflight[seq]
            self._publish(topic, f.payload)
            f.attempts += 1
            f.due = now + self._backoff(f.attempts)
            self.stats.resent += 1

    def _fill_window(self) -> None:
        window = self.config.delivery.receipt_window
        topic = topics.device_up(self.device_id)
        while len(self._inflight) < window:
            rows = self.outbox.next_after(self._cursor, min(FETCH_BATCH, window - len(self._inflight)))
            if not rows:
                return
            now = time.monotonic()
            for row in rows:
                info = self._publish(topic, row.payload)
                if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
                    log.warning("%s: publish of seq %d failed with rc %s", self.device_id, row.seq, info.rc)
                self._inflight[row.seq] = _InFlight(row.event_id, row.payload, now + self._backoff(1))
                self._cursor = row.seq
                self.stats.published += 1

    # ------------------------------------------------------------------ the time exchange (protocol §8.1)

    def _sync_time_if_due(self) -> None:
        if self._key is None or time.monotonic() < self._next_time_sync:
            return
        nonce = secrets.token_urlsafe(18)
        t1 = now_ms()
        request = TimeRequest(device_id=self.device_id, nonce=nonce, device_time_ms=t1)
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = MESSAGE_EXPIRY_S  # a request that waited would be answered too late to use
        self._time_request = (nonce, t1)
        self._publish(topics.device_time(self.device_id), seal(request, self._key, self.config.delivery.wire_format), props)
        self.stats.time_requests += 1
        # Moved on by an answer; unanswered requests (an older server, a denied topic) back off to the sync interval.
        self._next_time_sync = time.monotonic() + min(TIME_RETRY_S * 2**self._time_misses, TIME_SYNC_INTERVAL_S)
        self._time_misses = min(self._time_misses + 1, 16)

    def _take_time(self, answer: TimeResponse) -> None:
        t4 = now_ms()
        pending = self._time_request
        if pending is None or answer.nonce != pending[0]:
            self.stats.time_answers_ignored += 1
            log.info("%s: ignored a time answer that is not for the latest request (stale or replayed)", self.device_id)
            return
        try:
            est = estimate(answer, pending[1], t4)
        except ValueError as e:
            self.stats.time_answers_ignored += 1
            log.info("%s: ignored a time answer: %s", self.device_id, e)
            return
        self._time_request = None  # one answer per request: a replay of it is ignored
        self._time_misses = 0
        self.stats.clock_offset_ms = est.offset_ms
        self.stats.clock_offset_error_ms = est.error_ms
        self.stats.clock_synced_ms = t4
        self._next_time_sync = time.monotonic() + TIME_SYNC_INTERVAL_S
        off = abs(est.offset_ms) > self.config.clock.error_ms + est.error_ms
        if off and not self._clock_alarmed:  # once, until the clock is right again
            log.error("ALARM %s: the device clock is off by %d ms (± %d), more than its stated error of %d ms", self.device_id, -est.offset_ms, est.error_ms, self.config.clock.error_ms)
            if self._on_alarm is not None:
                line = {"alarm": "clock_off", "offset_ms": est.offset_ms, "offset_error_ms": est.error_ms, "stated_error_ms": self.config.clock.error_ms, "time_ms": int(time.time() * 1000)}
                self._on_alarm(json.dumps(line))
        self._clock_alarmed = off
