"""MQTT topic names: builders, parsers, and ids that must never reach a topic."""

from __future__ import annotations

import msgspec
import pytest

from protocol import topics
from protocol.messages import DeviceId
from protocol.topics import TopicError

GOOD_IDS = ["zfy-br200-310115-0317", "qt310-310115-0042", "phone-310115-xf-0022", "A", "0", "a.b_c-d", "x" * 64]
BAD_IDS = [
    "",
    "a/b",
    "a+b",
    "a#b",
    "+",
    "#",
    "/",
    "-leading-dash",
    ".hidden",
    "_x",
    "x" * 65,
    "with space",
    "tab\t",
    "line\n",
    "执法记录仪",
    "a\x00b",
    "dev$",
]


def test_topic_builders() -> None:
    d = "zfy-br200-310115-0317"
    assert topics.device_up(d) == "fe/v1/dev/zfy-br200-310115-0317/up"
    assert topics.device_down(d) == "fe/v1/dev/zfy-br200-310115-0317/down"
    assert topics.device_presence(d) == "fe/v1/dev/zfy-br200-310115-0317/presence"
    assert topics.list_snapshot("no_disturb") == "fe/v1/lists/no_disturb"
    assert topics.all_devices_up() == "fe/v1/dev/+/up"
    assert topics.all_devices_presence() == "fe/v1/dev/+/presence"
    assert topics.PREFIX == "fe/v1"


@pytest.mark.parametrize("device_id", GOOD_IDS)
def test_parse_inverts_build(device_id: str) -> None:
    assert topics.device_id_from_up(topics.device_up(device_id)) == device_id
    assert topics.device_id_from_presence(topics.device_presence(device_id)) == device_id


@pytest.mark.parametrize("device_id", BAD_IDS)
@pytest.mark.parametrize("builder", [topics.device_up, topics.device_down, topics.device_presence], ids=lambda f: f.__name__)
def test_builders_reject_ids_unfit_for_a_topic(builder: object, device_id: str) -> None:
    with pytest.raises(TopicError):
        builder(device_id)  # type: ignore[operator]


@pytest.mark.parametrize("device_id", GOOD_IDS + BAD_IDS)
def test_topic_rule_and_message_schema_agree_on_device_ids(device_id: str) -> None:
    """A device id that validates in a message is exactly one that can be used in a topic."""
    try:
        msgspec.convert(device_id, DeviceId)
        schema_ok = True
    except msgspec.ValidationError:
        schema_ok = False
    try:
        topics.device_up(device_id)
        topic_ok = True
    except TopicError:
        topic_ok = False
    assert schema_ok == topic_ok == (device_id in GOOD_IDS)


@pytest.mark.parametrize(
    "topic",
    [
        "fe/v1/dev/a/down",
        "fe/v1/dev/a/presence",
        "fe/v1/dev/+/up",
        "fe/v1/dev/#/up",
        "fe/v1/dev/#",
        "fe/v1/dev/a+b/up",
        "fe/v1/dev/a/b/up",
        "fe/v1/dev//up",
        "fe/v1/dev/.x/up",
        "fe/v1/dev/" + "x" * 65 + "/up",
        "/fe/v1/dev/a/up",
        "fe/v1/dev/a/up/",
        "fe/v1/dev/a/up\n",
        "fe/v1/dev/a\n/up",
        "fe/v2/dev/a/up",
        "FE/v1/dev/a/up",
        "fe/v1/lists/no_disturb",
        "",
    ],
)
def test_device_id_from_up_rejects(topic: str) -> None:
    with pytest.raises(TopicError):
        topics.device_id_from_up(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "fe/v1/dev/a/up",
        "fe/v1/dev/+/presence",
        "fe/v1/dev/#/presence",
        "fe/v1/dev/a/b/presence",
        "fe/v1/dev//presence",
        "fe/v1/dev/a/presence/",
        "fe/v1/dev/a/presence\n",
        "fe/v1/dev/a\n/presence",
        "fe/v2/dev/a/presence",
        "xx/v1/dev/a/presence",
        "",
    ],
)
def test_device_id_from_presence_rejects(topic: str) -> None:
    with pytest.raises(TopicError):
        topics.device_id_from_presence(topic)


def test_topic_error_is_a_value_error() -> None:
    assert issubclass(TopicError, ValueError)


def test_event_ids_are_time_ordered_uuids() -> None:
    import uuid

    from protocol.ids import new_event_id

    ids = [new_event_id(1_795_000_000_000 + i) for i in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert uuid.UUID(ids[0]).bytes[:6] == (1_795_000_000_000).to_bytes(6, "big")
