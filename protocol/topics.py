"""MQTT topic names: the only place they are spelled out.

Layout (``{d}`` is a device id, which never contains '/', '+' or '#')::

    fe/v1/dev/{d}/up        device -> server: signed DeviceMessage envelopes (QoS 1)
    fe/v1/dev/{d}/down      server -> device: signed ServerMessage envelopes (QoS 1)
    fe/v1/dev/{d}/presence  retained "online"/"offline"; "offline" is the device's MQTT last will
    fe/v1/dev/{d}/time      device -> server: signed TimeRequest, answered at once on .../down (QoS 1, short expiry)
    fe/v1/lists/{name}      retained signed ListSnapshot for every device (QoS 1)
"""

from __future__ import annotations

import re

PREFIX = "fe/v1"
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_UP = re.compile(r"^fe/v1/dev/([^/+#]+)/up$")


class TopicError(ValueError):
    """A topic that is not one of ours, or a device id that cannot be used in a topic."""


def _checked(device_id: str) -> str:
    if not _DEVICE_ID.fullmatch(device_id):  # fullmatch: '$' would allow a final newline
        raise TopicError(f"device id {device_id!r} is not allowed in a topic (1-64 of A-Z a-z 0-9 _ . -)")
    return device_id


def device_up(device_id: str) -> str:
    """Topic a device publishes its events on."""
    return f"{PREFIX}/dev/{_checked(device_id)}/up"


def device_down(device_id: str) -> str:
    """Topic the server publishes receipts and other notices for one device on."""
    return f"{PREFIX}/dev/{_checked(device_id)}/down"


def device_presence(device_id: str) -> str:
    """Retained presence topic; the device's last will sets it to 'offline'."""
    return f"{PREFIX}/dev/{_checked(device_id)}/presence"


def device_time(device_id: str) -> str:
    """Topic a device asks the server's time on (a TimeRequest; never an outbox event)."""
    return f"{PREFIX}/dev/{_checked(device_id)}/time"


def all_devices_time() -> str:
    """Subscription filter for every device's time requests."""
    return f"{PREFIX}/dev/+/time"


def device_id_from_time(topic: str) -> str:
    """The device id in a time-request topic, or TopicError."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != f"{PREFIX}/dev" or parts[4] != "time":
        raise TopicError(f"topic {topic!r} is not a time-request topic ({PREFIX}/dev/<device id>/time)")
    return _checked(parts[3])


def list_snapshot(name: str) -> str:
    """Retained topic of a list snapshot shared by all devices."""
    return f"{PREFIX}/lists/{name}"


def all_devices_up() -> str:
    """Subscription filter for every device's events."""
    return f"{PREFIX}/dev/+/up"


def all_devices_presence() -> str:
    """Subscription filter for every device's presence."""
    return f"{PREFIX}/dev/+/presence"


def device_id_from_up(topic: str) -> str:
    """The device id in an 'up' topic, or TopicError."""
    m = _UP.fullmatch(topic)
    if not m or not _DEVICE_ID.fullmatch(m.group(1)):
        raise TopicError(f"topic {topic!r} is not a device 'up' topic ({PREFIX}/dev/<device id>/up)")
    return m.group(1)


def device_id_from_presence(topic: str) -> str:
    """The device id in a presence topic, or TopicError."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != f"{PREFIX}/dev" or parts[4] != "presence":
        raise TopicError(f"topic {topic!r} is not a presence topic")
    return _checked(parts[3])
