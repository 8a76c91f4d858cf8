"""Built paho objects for unit tests of MQTT callbacks without a broker (as Home Assistant's MQTT tests do).

A test builds the ``MQTTMessage`` paho would hand to ``on_message``, or the ``ReasonCode`` it would hand to
``on_connect`` / ``on_publish``, and calls the callback itself. What the code under test publishes is caught
by a ``Recorder`` set as ``publish`` (and ``subscribe``, ``ack``) on the paho client *instance*: the client
is built for real but never connects.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

#: MQTT v5 reason codes the tests use (MQTT 5.0 §2.4): success, and "not authorized" as a broker's ACL answers.
SUCCESS = 0x00
NOT_AUTHORIZED = 0x87
#: CONNACK's "bad user name or password".
BAD_CREDENTIALS = 0x86


def message(topic: str, payload: bytes, *, mid: int = 1, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessage:
    """The message paho would pass to ``on_message`` for this PUBLISH."""
    msg = mqtt.MQTTMessage(mid, topic=topic.encode())
    msg.payload = payload
    msg.qos = qos
    msg.retain = retain
    return msg


def connack(code: int = SUCCESS) -> ReasonCode:
    """The reason code paho passes to ``on_connect``."""
    return ReasonCode(PacketTypes.CONNACK, identifier=code)


def puback(code: int = SUCCESS) -> ReasonCode:
    """The reason code paho passes to ``on_publish`` for a QoS 1 PUBACK."""
    return ReasonCode(PacketTypes.PUBACK, identifier=code)


def disconnect_reason(code: int = SUCCESS) -> ReasonCode:
    """The reason code paho passes to ``on_disconnect`` (0: a normal disconnection)."""
    return ReasonCode(PacketTypes.DISCONNECT, identifier=code)


def connect_flags(session_present: bool = False) -> mqtt.ConnectFlags:
    """The flags paho passes to ``on_connect``."""
    return mqtt.ConnectFlags(session_present=session_present)


@dataclass(frozen=True, slots=True)
class Published:
    """One call to ``Client.publish`` as the code under test made it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties | None
    mid: int


@dataclass(slots=True)
class Recorder:
    """Stands in for a client's ``publish``, ``subscribe`` and ``ack``; thread-safe (writers call it on their thread)."""

    published: list[Published] = field(default_factory=list)
    subscribed: list[object] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)
    _mids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, topic: str, payload: bytes = b"", qos: int = 0, retain: bool = False, properties: Properties | None = None) -> mqtt.MQTTMessageInfo:
        """Record a publish; answer as paho does when it queued it (a fresh message id, success)."""
        with self._lock:
            mid = next(self._mids)
            self.published.append(Published(topic, bytes(payload), qos, retain, properties, mid))
        return mqtt.MQTTMessageInfo(mid)

    def subscribe(self, topic: object, qos: int = 0, **_: object) -> tuple[mqtt.MQTTErrorCode, int]:
        """Record a subscription request."""
        with self._lock:
            self.subscribed.append((topic, qos))
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS, 0

    def ack(self, mid: int, qos: int) -> mqtt.MQTTErrorCode:
        """Record a manual PUBACK."""
        with self._lock:
            self.acks.append((mid, qos))
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def on(self, topic: str) -> list[Published]:
        """What was published on one topic, in order."""
        with self._lock:
            return [p for p in self.published if p.topic == topic]

    def install(self, client: mqtt.Client) -> Recorder:
        """Replace ``publish``, ``subscribe`` and ``ack`` on this client instance (never on the class)."""
        client.publish = self.publish  # type: ignore[method-assign]
        client.subscribe = self.subscribe  # type: ignore[method-assign,assignment]
        client.ack = self.ack  # type: ignore[method-assign]
        return self
