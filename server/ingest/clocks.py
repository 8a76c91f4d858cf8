"""Device clocks: flag events whose device time cannot be right, and alert once per device.

An event is the device's word, stamped by the device: the server never changes ``device_time_ms`` and
never refuses an event for its time. It compares the stamp with its own receive time, the device's
claimed error and the device's own reported offset, and records a reason beside a suspect event
(table ``clock_suspects``). The rule (protocol/README.md §8.2):

* ``after_2100``: device time in the year 2100 or later, whatever error the device claims.
* ``future``: device time later than the server's receive time + the claimed error + a tolerance. An
  event cannot be made after it arrived. (An event much *older* than its arrival is normal: devices
  are offline for hours and deliver from their outbox.)
* ``before_registration``: device time before the device was registered (less error and tolerance).
* ``offset_exceeds_error``: the device's own last reported offset (``clock_offset_ms`` of its
  ``device_status``, measured by the time exchange) is larger than the error it claims for the event:
  its clock is known to be further off than it says. This is what catches a clock that runs *behind*.

A device gets one ``clock_suspect`` alert, and another one only a day later or after its clock was
fine for a while (state in ``device_clocks``, inside the ingest's transaction; rows: server/storage/devices.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from protocol import topics
from protocol.codec import ProtocolError, open_envelope, seal
from protocol.messages import DeviceMessage, DeviceStatus, TimeResponse
from protocol.signing import SigningKey, VerifyKey
from protocol.timesync import decode_time_request
from server import db as dbmod
from server.rules.alerts import raise_alert
from server.storage import devices
from server.storage.engine import Tx

log = logging.getLogger(__name__)

#: The server's own clock error bound (it is NTP-synchronised) plus rounding: added to every device's claim.
TOLERANCE_MS = 2_000
#: No event of this system is stamped in the year 2100 or later (2100-01-01T00:00:00Z).
LATEST_PLAUSIBLE_MS = int(dt.datetime(2100, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
#: At most one alert per device in this period while its clock stays suspect.
REALERT_AFTER_MS = 24 * 3600 * 1000
#: A device whose events were fine over this span (server receive times) has recovered: the next suspect
#: event raises a new alert at once.
RECOVERED_AFTER_MS = 10 * 60 * 1000


def judge(device_time_ms: int, clock_error_ms: int, received_ms: int, registered_ms: int, reported_offset_ms: int | None) -> tuple[str, str] | None:
    """(reason code, English detail) if the event's device time is suspect, else None."""
    if device_time_ms >= LATEST_PLAUSIBLE_MS:
        return "after_2100", "device time is in the year 2100 or later"
    slack = clock_error_ms + TOLERANCE_MS
    ahead = device_time_ms - received_ms
    if ahead > slack:
        return "future", f"device time is {_span(ahead)} after the server received the event (claimed error {clock_error_ms} ms)"
    if device_time_ms < registered_ms - slack:
        return "before_registration", f"device time is {_span(registered_ms - device_time_ms)} before the device was registered"
    if reported_offset_ms is not None and abs(reported_offset_ms) > slack:
        return "offset_exceeds_error", f"the device reported its clock off by {reported_offset_ms} ms, more than the claimed error of {clock_error_ms} ms"
    return None


#: What the server remembers of a device's clock: (offset_ms, alerted_ms, ok_since_ms).
Memory = tuple[int | None, int | None, int | None]


def check_stored(tx: Tx, stored: Sequence[tuple[DeviceMessage, int]], now_ms: int) -> list[str | None]:
    """Judge newly stored events, (message, received_ms) in each device's sequence order, inside the ingest's
    transaction: record the suspect ones, alert once per device; returns each event's reason or None. Each device's
    state is read once and written at most once per call."""
    reasons: list[str | None] = []
    states: dict[str, tuple[int, Memory, Memory] | None] = {}  # device -> (registered_ms, as read, as now)
    for msg, received_ms in stored:
        if msg.device_id not in states:
            read = devices.clock_state(tx, msg.device_id)
            states[msg.device_id] = None if read is None else (read[0], read[1:], read[1:])
        state = states[msg.device_id]
        if state is None:  # not registered (cannot happen for a stored event; nothing to judge against)
            reasons.append(None)
            continue
        registered_ms, before, memory = state
        memory, reason = _judge_stored(tx, msg, received_ms, registered_ms, memory, now_ms)
        states[msg.device_id] = (registered_ms, before, memory)
        reasons.append(reason)
    for device_id, state in states.items():
        if state is not None and state[2] != state[1]:  # most batches change nothing: no write
            devices.set_clock_state(tx, device_id, *state[2])
    return reasons


def _judge_stored(tx: Tx, msg: DeviceMessage, received_ms: int, registered_ms: int, memory: Memory, now_ms: int) -> tuple[Memory, str | None]:
    """One event against the device's clock memory: flag it if suspect, alert if due; the memory after it."""
    offset_ms, alerted_ms, ok_since_ms = memory
    if isinstance(msg, DeviceStatus) and msg.clock_offset_ms is not None:
        offset_ms = msg.clock_offset_ms  # the device's newest measurement applies to this event too
    verdict = judge(msg.device_time_ms, msg.clock_error_ms, received_ms, registered_ms, offset_ms)
    if verdict is None:
        return (offset_ms, alerted_ms, ok_since_ms if ok_since_ms is not None else received_ms), None
    reason, detail = verdict
    devices.add_clock_suspect(
        tx, event_id=msg.event_id, device_id=msg.device_id, reason=reason, detail=detail, device_time_ms=msg.device_time_ms, received_ms=received_ms
    )
    # Fine since ok_since_ms, for long enough: this is a new problem, not the one already alerted.
    recovered = ok_since_ms is not None and received_ms - ok_since_ms >= RECOVERED_AFTER_MS
    if alerted_ms is None or now_ms - alerted_ms >= REALERT_AFTER_MS or recovered:
        _alert(tx, msg, reason, detail, now_ms)
        alerted_ms = now_ms
    return (offset_ms, alerted_ms, None), reason


def _alert(con: Tx, msg: DeviceMessage, reason: str, detail: str, now_ms: int) -> None:
    zh = {
        "future": "事件时间晚于服务器收到它的时间",
        "after_2100": "事件时间在2100年以后",
        "before_registration": "事件时间早于设备注册时间",
        "offset_exceeds_error": "设备自报的时钟偏差超出其声称的误差",
    }[reason]
    raise_alert(
        con, "clock_suspect", now_ms,
        f"设备 {msg.device_id} 的时钟可疑：{zh}。事件已保存并标记，请核对设备时间。",
        f"Device {msg.device_id} has a suspect clock: {detail}. Its events are stored and flagged; check the device's time.",
        device_id=msg.device_id, ref=msg.event_id,
    )  # fmt: skip


def _span(ms: int) -> str:
    """A duration for people: '48.0 h', '12.3 s'."""
    return f"{ms / 3_600_000:.1f} h" if ms >= 3_600_000 else f"{ms / 1000:.1f} s"


# --------------------------------------------------------------------------- the time exchange (§8.1)

#: At most one answer per device in this interval: a flood of requests costs the server one publish a second.
ANSWER_INTERVAL_S = 1.0


class TimeServer:
    """Answers devices' time requests at once, on paho's thread; nothing is stored.

    A request is answered only if it is a registered, unrevoked device's, signed with its key, on its own
    topic. The answer is signed like every server message and expires in the broker after a few seconds.
    """

    def __init__(self, db_path: str | Path, key: SigningKey) -> None:
        self.db_path = db_path
        self.key = key
        self._last: dict[str, float] = {}  # device -> monotonic time of its last answer (registered devices only)
        self.answered = 0
        self.refused = 0

    def answer(self, topic: str, payload: bytes, received_ms: int) -> tuple[str, bytes] | None:
        """(topic, payload) to publish for a time request, or None (logged) when it is not answered."""
        try:
            device_id = topics.device_id_from_time(topic)
            fmt, env = open_envelope(payload)
            with dbmod.reading(self.db_path) as tx:
                found = devices.registrations(tx, [device_id])
            if not found or found[0][2] is not None:
                raise ProtocolError("unknown_device", f"device {device_id!r} is not registered or was revoked")
            if not VerifyKey.from_hex(found[0][1]).verify(env.body, env.sig):
                raise ProtocolError("bad_signature", f"time request not signed by device {device_id!r}")
            req = decode_time_request(env.body, fmt)
            if req.device_id != device_id:
                raise ProtocolError("topic_mismatch", f"time request of {req.device_id!r} on the topic of {device_id!r}")
        except (ProtocolError, topics.TopicError) as e:
            self.refused += 1
            log.info("time request on %s not answered: %s", topic, e)
            return None
        now = time.monotonic()
        if now - self._last.get(device_id, -ANSWER_INTERVAL_S) < ANSWER_INTERVAL_S:
            self.refused += 1
            log.info("time request of %s not answered: more than one a second", device_id)
            return None
        self._last[device_id] = now
        answer = TimeResponse(
            message_id=str(uuid.uuid4()), device_id=device_id, server_time_ms=int(time.time() * 1000),
            nonce=req.nonce, request_device_time_ms=req.device_time_ms, received_ms=received_ms,
        )  # fmt: skip
        self.answered += 1
        return topics.device_down(device_id), seal(answer, self.key, fmt)
