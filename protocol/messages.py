"""Every message that crosses MQTT, as msgspec Structs.

Two tagged unions: ``DeviceMessage`` (device -> server) and ``ServerMessage`` (server -> device).
The tag field is ``type``. Evolution rules (msgspec's schema-evolution guidance): a new field is
added with a default; a tag is never renamed and a field's type never changes (add a new type
instead). Unknown fields are ignored on the wire so old and new peers read each other.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from msgspec import Meta, Struct

#: Version of the message schema this code writes. Readers accept any version they understand.
SCHEMA_VERSION = 1

# Python's (and msgspec's) '$' also matches just before a final newline, so "abc\n" would pass
# '^[a-z]+$'. The lookahead makes the end exact and is valid ECMA-262, as JSON Schema patterns must be.
_END = r"$(?!\n)"

#: The largest integer on the wire: what a signed 64-bit database column holds. Larger ones are refused
#: as not matching the schema, so a receiver never fails to store a message it accepted.
INT64_MAX = 2**63 - 1
#: The latest time on the wire, 9999-12-31T23:59:59.999Z: every epoch-ms value is a calendar date.
MAX_EPOCH_MS = 253_402_300_799_999

# Identifiers travel inside MQTT topic levels, so they must never contain '/', '+' or '#'.
DeviceId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}" + _END, description="Device id: 1-64 of A-Z a-z 0-9 _ . -")]
EventId = Annotated[str, Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+" + _END, description="Globally unique id made on the device, e.g. a UUID in canonical form")]
Seq = Annotated[int, Meta(ge=1, le=2**53, description="Per-device sequence number: starts at 1, +1 per event, never repeats, also across reboots")]
EpochMs = Annotated[int, Meta(ge=0, le=MAX_EPOCH_MS, description="Milliseconds since 1970-01-01T00:00:00Z, before the year 10000")]
ShortText = Annotated[str, Meta(max_length=200)]
LongText = Annotated[str, Meta(max_length=4000)]
Sha256Hex = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}" + _END, description="SHA-256 in lower-case hex")]
# Unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters, check character validated server-side.
CreditCode = Annotated[str, Meta(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}" + _END, description="Unified social credit code, 18 characters")]

ClockSource = Literal["gnss", "ntp", "server", "rtc", "unsynced"]
InspectionResult = Literal[
    "no_violation",  # 未发现问题
    "rectification_ordered",  # 责令整改
    "case_opened",  # 立案
    "referred",  # 移送
    "not_completed",  # 未完成 (e.g. premises closed)
]
ExceptionBasisKind = Literal["complaint", "random_draw", "major_risk", "rectification_follow_up", "superior_assignment"]
MediaKind = Literal["video", "audio", "photo"]
AlarmKind = Literal["outbox_corrupt", "outbox_full", "clock_unsynced", "storage_low", "media_integrity"]


class GeoPoint(Struct, frozen=True, kw_only=True):
    """A WGS-84 position with its accuracy radius."""

    lat: Annotated[float, Meta(ge=-90, le=90)]
    lon: Annotated[float, Meta(ge=-180, le=180)]
    accuracy_m: Annotated[float, Meta(ge=0, le=INT64_MAX)] | None = None


class ExceptionBasis(Struct, frozen=True, kw_only=True):
    """Why an inspection may go ahead despite the no-disturb list or a recent inspection."""

    kind: ExceptionBasisKind
    reference: ShortText  # complaint ticket number, plan id, order number ...
    note: LongText = ""


# --------------------------------------------------------------------------- device -> server


class DeviceEvent(Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields every device message carries."""

    schema: Annotated[int, Meta(ge=1, le=INT64_MAX)] = 2  # revision 2 of every device message added prev_hash
    event_id: EventId
    device_id: DeviceId
    seq: Seq
    device_time_ms: EpochMs
    # How far the device clock can be trusted: |device clock - true time| <= clock_error_ms.
    clock_error_ms: Annotated[int, Meta(ge=0, le=INT64_MAX)]
    clock_source: ClockSource = "rtc"
    # Device-side chain: SHA-256 (hex) of the body bytes of this device's event seq - 1, so an event
    # deleted or altered on the device shows as a break. None for the first event of an outbox.
    prev_hash: Sha256Hex | None = None


class EnterpriseScanned(DeviceEvent, kw_only=True, tag="enterprise_scanned"):
    """An officer scanned an enterprise's QR code (扫码检查)."""

    schema: Annotated[int, Meta(ge=1, le=INT64_MAX)] = 3  # revision 2 added field, matter, exception_basis; 3 prev_hash
    officer_id: ShortText
    code_text: Annotated[str, Meta(max_length=2000)]  # the QR code's text, exactly as read
    credit_code: CreditCode | None = None
    reason: LongText = ""
    location: GeoPoint | None = None
    # Decision the device took offline from its list snapshot, if it had to (code as in ScanDecision).
    local_decision: ShortText | None = None
    field: ShortText | None = None  # enforcement field the officer means to inspect; the server decides on it
    matter: LongText = ""
    exception_basis: ExceptionBasis | None = None


class InspectionStarted(DeviceEvent, kw_only=True, tag="inspection_started"):
    """An inspection began at an enterprise."""

    inspection_id: EventId
    officer_id: ShortText
    agency_id: ShortText
    credit_code: CreditCode
    field: ShortText  # enforcement field (执法领域), e.g. "food_safety"
    matter: LongText = ""  # what is checked
    scan_event_id: EventId | None = None
    exception_basis: ExceptionBasis | None = None
    location: GeoPoint | None = None


class InspectionJoined(DeviceEvent, kw_only=True, tag="inspection_joined"):
    """An officer joined another agency's inspection under way (综合查一次)."""

    inspection_id: EventId
    officer_id: ShortText
    agency_id: ShortText
    field: ShortText
    matter: LongText = ""
    scan_event_id: EventId | None = None


class InspectionEnded(DeviceEvent, kw_only=True, tag="inspection_ended"):
    """An inspection ended, with its result."""

    inspection_id: EventId
    officer_id: ShortText
    result: InspectionResult
    summary: LongText = ""


class MediaCaptured(DeviceEvent, kw_only=True, tag="media_captured"):
    """Metadata of a finished recording; the file itself stays on the device, the hash is the promise."""

    file_name: Annotated[str, Meta(max_length=255)]
    media_kind: MediaKind
    size_bytes: Annotated[int, Meta(ge=0, le=INT64_MAX)]
    sha256: Sha256Hex
    started_ms: EpochMs | None = None
    ended_ms: EpochMs | None = None
    duration_ms: Annotated[int, Meta(ge=0, le=INT64_MAX)] | None = None
    officer_id: ShortText | None = None
    inspection_id: EventId | None = None
    case_no: ShortText | None = None
    collector: ShortText | None = None
    proves: LongText | None = None  # what the record proves (证明对象)
    location: GeoPoint | None = None


class DeviceStatus(DeviceEvent, kw_only=True, tag="device_status"):
    """Heartbeat: how the device and its outbox are doing."""

    outbox_depth: Annotated[int, Meta(ge=0, le=INT64_MAX)]
    oldest_unsent_age_s: Annotated[float, Meta(ge=0, le=INT64_MAX)]
    free_storage_bytes: Annotated[int, Meta(ge=0, le=INT64_MAX)]
    battery_pct: Annotated[int, Meta(ge=0, le=100)] | None = None
    clock_offset_ms: Annotated[int, Meta(ge=-INT64_MAX, le=INT64_MAX)] | None = None  # server time minus device time, as last estimated
    config_version: Annotated[int, Meta(ge=0, le=INT64_MAX)] = 0
    firmware: ShortText = ""


class DeviceAlarm(DeviceEvent, kw_only=True, tag="device_alarm"):
    """Something on the device needs a person's attention."""

    alarm: AlarmKind
    detail: LongText = ""
    # For outbox_corrupt: the sequence numbers that may have been lost with the old database.
    lost_seq_from: Seq | None = None
    lost_seq_to: Seq | None = None


class MediaIntegrity(DeviceEvent, kw_only=True, tag="media_integrity"):
    """A recording whose hash was already sent has changed or disappeared on the device."""

    schema: Annotated[int, Meta(ge=1, le=INT64_MAX)] = 1
    media_event_id: EventId  # the MediaCaptured event that promised the hash
    file_name: Annotated[str, Meta(max_length=255)]
    problem: Literal["modified", "deleted"]
    sha256_expected: Sha256Hex
    sha256_now: Sha256Hex | None = None
    size_now: Annotated[int, Meta(ge=0, le=INT64_MAX)] | None = None


class ProvisionalDecision(DeviceEvent, kw_only=True, tag="provisional_decision"):
    """The device decided a scan from its snapshot because the server did not answer in time."""

    scan_event_id: EventId
    outcome: Literal["allowed", "join", "repeat", "refused"]
    code: ShortText
    snapshot_version: Annotated[int, Meta(ge=0, le=INT64_MAX)]  # 0: the device had no snapshot at all
    inspection_id: str | None = None


DeviceMessage = Union[EnterpriseScanned, InspectionStarted, InspectionJoined, InspectionEnded, MediaCaptured, DeviceStatus, DeviceAlarm, ProvisionalDecision, MediaIntegrity]
DEVICE_MESSAGE_TYPES: tuple[type[DeviceEvent], ...] = DeviceMessage.__args__  # type: ignore[attr-defined]

#: Low-priority kinds are refused first when the device's outbox fills up.
LOW_PRIORITY_TYPES: frozenset[str] = frozenset({"device_status", "media_captured"})


# --------------------------------------------------------------------------- device -> server requests (not events)

Nonce = Annotated[str, Meta(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+" + _END, description="Random, never reused: 16-64 of A-Z a-z 0-9 _ -")]


class TimeRequest(Struct, frozen=True, kw_only=True, tag_field="type", tag="time_request"):
    """The device asks the server's time (on its own ``time`` topic): answered at once, never stored.

    Not an event: no ``seq``, no outbox; a lost request is simply made again with a new nonce.
    """

    schema: Annotated[int, Meta(ge=1, le=INT64_MAX)] = 1
    device_id: DeviceId
    nonce: Nonce
    device_time_ms: EpochMs  # t1: the device's clock when it sent the request


DEVICE_REQUEST_TYPES: tuple[type[Struct], ...] = (TimeRequest,)


# --------------------------------------------------------------------------- server -> device


class ServerNotice(Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields every server message carries."""

    schema: Annotated[int, Meta(ge=1, le=INT64_MAX)] = SCHEMA_VERSION
    message_id: EventId
    device_id: DeviceId
    server_time_ms: EpochMs


class ReceiptItem(Struct, frozen=True, kw_only=True):
    """One event the server has committed."""

    event_id: EventId
    seq: Seq
    status: Literal["stored", "duplicate"]  # duplicate: already stored earlier, merged silently
    log_index: Annotated[int, Meta(ge=0, le=INT64_MAX)] | None = None  # the record's index in the server's evidence log


class Receipt(ServerNotice, kw_only=True, tag="receipt"):
    """Proof of storage: sent only after the server's transaction committed."""

    schema: Annotated[int, Meta(ge=1, le=INT64_MAX)] = 2  # revision 2 added ReceiptItem.log_index

    items: list[ReceiptItem]


class RejectionItem(Struct, frozen=True, kw_only=True):
    """One message the server refused to store, with the reason."""

    event_id: str | None = None
    seq: int | None = None
    reason_code: ShortText
    reason: LongText


class Rejection(ServerNotice, kw_only=True, tag="rejection"):
    """Messages refused; the device keeps them (never delete evidence) and raises an alarm."""

    items: list[RejectionItem]


class ListSnapshot(ServerNotice, kw_only=True, tag="list_snapshot"):
    """A full copy of a list the device needs offline (e.g. the no-disturb list)."""

    list_name: Literal["no_disturb", "revoked_codes", "officers"]
    version: Annotated[int, Meta(ge=0, le=INT64_MAX)]
    entries: list[str]
    valid_until_ms: EpochMs | None = None


class DecisionWarning(Struct, frozen=True, kw_only=True):
    """Something about a scan the officer and supervisors should know, that does not block it."""

    code: ShortText
    message_zh: LongText
    message_en: LongText


class ScanDecision(ServerNotice, kw_only=True, tag="scan_decision"):
    """The server's answer to an EnterpriseScanned event."""

    schema: Annotated[int, Meta(ge=1, le=INT64_MAX)] = 2  # revision 2 added joined_agency_id, exception_used, warnings
    scan_event_id: EventId
    outcome: Literal["allowed", "join", "repeat", "refused"]
    code: ShortText  # machine code, e.g. "no_disturb"
    message_zh: LongText
    message_en: LongText
    inspection_id: str | None = None
    joined_agency_id: ShortText | None = None
    exception_used: bool = False
    warnings: list[DecisionWarning] = []


class Credential(Struct, frozen=True, kw_only=True):
    """An officer's enforcement credential (执法证)."""

    officer_id: ShortText
    agency_id: ShortText
    credential_no: ShortText
    fields: list[ShortText]
    valid_from_ms: EpochMs
    valid_to_ms: EpochMs
    revoked: bool = False


class InspectionRef(Struct, frozen=True, kw_only=True):
    """An inspection at an enterprise, under way (no end) or past."""

    inspection_id: ShortText
    credit_code: CreditCode
    agency_id: ShortText
    field: ShortText
    started_ms: EpochMs
    ended_ms: EpochMs | None = None


class NoDisturbEntry(Struct, frozen=True, kw_only=True):
    """An enterprise on the no-disturb list (无事不扰)."""

    credit_code: CreditCode
    basis: LongText
    valid_to_ms: EpochMs | None = None


class SnapshotPolicy(Struct, frozen=True, kw_only=True):
    """The policy numbers a device needs to decide offline."""

    repeat_window_days: int
    join_window_hours: float
    online_timeout_s: float


class DecisionSnapshot(ServerNotice, kw_only=True, tag="decision_snapshot"):
    """What a terminal needs to decide a scan when the server cannot be reached, in numbered parts.

    A device keeps the parts of the newest ``version`` and uses the snapshot once all ``parts`` arrived.
    Lists are split across parts; ``policy`` and ``code_keys`` are in every part.
    """

    version: Annotated[int, Meta(ge=1, le=INT64_MAX)]
    part: Annotated[int, Meta(ge=1, le=INT64_MAX)]
    parts: Annotated[int, Meta(ge=1, le=INT64_MAX)]
    region: ShortText
    policy: SnapshotPolicy
    code_keys: dict[str, str]  # enterprise-code key id -> Ed25519 public key, hex
    revoked_codes: list[str] = []  # "<credit code>:<issue date YYYYMMDD>" of revoked enterprise codes
    credentials: list[Credential] = []
    no_disturb: list[NoDisturbEntry] = []
    open_inspections: list[InspectionRef] = []
    recent_inspections: list[InspectionRef] = []


class ConfigUpdate(ServerNotice, kw_only=True, tag="config_update"):
    """New settings for the device; applied if config_version is newer than its own."""

    config_version: Annotated[int, Meta(ge=1, le=INT64_MAX)]
    settings: dict[str, int | float | str | bool]  # dotted config keys, e.g. "delivery.resend_after_s"


class TimeResponse(ServerNotice, kw_only=True, tag="time_response"):
    """The answer to a TimeRequest, sent at once; ``server_time_ms`` is the server's clock when it sent it (t3).

    A device uses it only if ``nonce`` is that of its latest request and the round trip was short, so a
    message that waited in the broker never sets its clock (protocol/README.md §8.1).
    """

    nonce: Nonce
    request_device_time_ms: EpochMs  # t1, as the request said
    received_ms: EpochMs  # t2: the server's clock when the request arrived


ServerMessage = Union[Receipt, Rejection, ListSnapshot, ScanDecision, ConfigUpdate, DecisionSnapshot, TimeResponse]
SERVER_MESSAGE_TYPES: tuple[type[ServerNotice], ...] = ServerMessage.__args__  # type: ignore[attr-defined]


class Envelope(Struct, frozen=True, kw_only=True):
    """What is published: the encoded message bytes and the Ed25519 signature over exactly those bytes."""

    body: bytes
    sig: Annotated[bytes, Meta(min_length=64, max_length=64)]


def type_tag(cls: type[Struct]) -> str:
    """The wire tag of a message class."""
    return cls.__struct_config__.tag  # type: ignore[return-value]
