"""The frozen example payloads in protocol/examples/ must decode with today's code, forever.

Each file ``<type tag>.v<N>.json`` holds the decoded body of one message (the JSON object with its
``type`` tag) as written at revision N of that message type (its ``schema`` field says N). A type
starts at revision 1; a revision that adds fields gets a new file. The files are frozen: once
committed they never change, so every later version of the decoders is tested against what old
devices and servers really send. New revisions add new files (and their hashes below) instead of
editing old ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

import protocol
from protocol.codec import ProtocolError, decode_device_body, decode_server_body, encode
from protocol.messages import (
    DEVICE_MESSAGE_TYPES,
    DEVICE_REQUEST_TYPES,
    SERVER_MESSAGE_TYPES,
    DeviceEvent,
    DeviceMessage,
    EnterpriseScanned,
    ExceptionBasis,
    GeoPoint,
    Receipt,
    ReceiptItem,
    RejectionItem,
    ScanDecision,
    ServerMessage,
    ServerNotice,
    TimeRequest,
    TimeResponse,
    type_tag,
)
from protocol.timesync import MAX_ROUND_TRIP_MS, decode_time_request, estimate

EXAMPLES_DIR = Path(protocol.__file__).resolve().parent / "examples"
FILE_NAME = re.compile(r"^(?P<tag>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.json$")

DEVICE_TAGS = {type_tag(cls): cls for cls in DEVICE_MESSAGE_TYPES}
SERVER_TAGS = {type_tag(cls): cls for cls in SERVER_MESSAGE_TYPES}
#: Device messages that are not events (no seq, no outbox): the time request.
REQUEST_TAGS = {type_tag(cls): cls for cls in DEVICE_REQUEST_TYPES}
ALL_MESSAGE_TYPES = [*DEVICE_MESSAGE_TYPES, *SERVER_MESSAGE_TYPES, *DEVICE_REQUEST_TYPES]

#: SHA-256 of every frozen example (line endings normalised to LF). Never edit an entry: a changed
#: example means old peers' payloads are no longer what the tests check. Add new files instead.
FROZEN_SHA256 = {
    "config_update.v1.json": "5dafa44ae415b58895e0c8f434583c7f9d25402d69b99b7eb36b129418fbab2b",
    "decision_snapshot.v1.json": "02675907bd86e7dd2f2fb4f054fd42c6f851698b459a8838fa23b1438c6def9c",
    "device_alarm.v1.json": "d8a5fc057a975edaf33ffb3fd8a60e275b780913535a7830cc1bca9446204d5a",
    "device_alarm.v2.json": "b6eacf12dab174e4d57b9333879e4ca7e481873c4f2cc1ffc0b5e6876e2294c6",
    "device_status.v1.json": "d1e12deed6fcbfdb417bbde58b5ae60e2dcc123813a4b3e9f915bf755f5f7252",
    "device_status.v2.json": "539c403da88520c81ff57323463be4670541718ca489e722e01211fa3e42244e",
    "enterprise_scanned.v1.json": "f195fa20d5d894459bd0438ee3589a5f240acb5b2cc104c482a6e708ae204293",
    "enterprise_scanned.v2.json": "085b924fa0aad80035e14401b80644bb40c06d719521bd0d8a8552b1f6e10220",
    "enterprise_scanned.v3.json": "fd563ad44c61231faa96456a2f9b0f541e935240b15a204b8fda04802bde422a",
    "inspection_ended.v1.json": "12b11923c78830836f519c603c87915e8311c955a00ff02f416c622e22341575",
    "inspection_ended.v2.json": "89a24b458f40e8cd6d1bb992db459502fedd64a717a49a47ec85809044ce43ec",
    "inspection_joined.v1.json": "6356dcb99d07e665aba09c1f860f17ce0e7cf88ecf12fb272bc098e77c745d10",
    "inspection_joined.v2.json": "0573150366c3c5515e75ef837ec5cae9e29da5931274e3e0d72bf1cc8f6fb567",
    "inspection_started.v1.json": "6768c4e8bc6dd4707ce6097dcf81c45a08fecb9268a55fb526d1151143c77f91",
    "inspection_started.v2.json": "441943540d7224278bdc97acf314b389e107e44b22d03455889ed9bc610ef818",
    "list_snapshot.v1.json": "99780b1b2a2ee2b5e493e57cb7136a632d10e3f4a30b55f2a6d9cefcea02ebc1",
    "media_captured.v1.json": "b1bad59049848ab1e0d273eed6238a636d8c536674bf3e86d8ab89ece8b2bb1e",
    "media_captured.v2.json": "055b1edd0cd19ff52f3dd52a2aa1ccdd12f1fe0f147d80381639a2ca6597b656",
    "media_integrity.v1.json": "ee1cc601374a76dc1475353b7321d9a2b69dc6dcce0a379d14e5cc4875b9ab11",
    "provisional_decision.v1.json": "69bf2e24e13e4e29f88a6367a4cf99cff687ec2748d24d041d2e52a66c415452",
    "provisional_decision.v2.json": "98c9fe9b1f44bf37f0a78f7dcc7ea306d62e70f1d676be2620004b9de7df8dce",
    "receipt.v1.json": "5b172ba520c9bc4cc10627559e4b481417395163bf285d803bc71aecac19a37a",
    "receipt.v2.json": "151825a798f1676b28c1e6b3659112f175a07995c94aadd8d889508ffef47c50",
    "rejection.v1.json": "6931845523abb4d0a9a7adab925736eb236251c029418281f3699a651b4d61f9",
    "scan_decision.v1.json": "5f89b70576afd4a9cf70e3a8cd080274cb286e3d9b309b57cc8a973ac871495d",
    "scan_decision.v2.json": "b9679ed63b74a842280222d36cc880b31ca3514071a379c9cd39283fa766d161",
    "time_request.v1.json": "654863d451b9e0c29225e0aaf6e0e4cc5dbcb1edac0622e8fd5098bb0691876d",
    "time_response.v1.json": "2cddf88094995f40c6f3927c65559150b21aaad17460a4c8faac0a732cfc2fcf",
}

EXAMPLE_FILES = sorted(EXAMPLES_DIR.glob("*.json"))


def _tag_and_version(path: Path) -> tuple[str, int]:
    m = FILE_NAME.match(path.name)
    assert m, f"{path.name}: example files are named <type tag>.v<schema version>.json"
    return m.group("tag"), int(m.group("version"))


def _decode(tag: str, data: bytes, fmt: str) -> DeviceMessage | ServerMessage | TimeRequest:
    if tag in DEVICE_TAGS:
        return decode_device_body(data, fmt)  # type: ignore[arg-type]
    if tag in REQUEST_TAGS:
        return decode_time_request(data, fmt)  # type: ignore[arg-type]
    return decode_server_body(data, fmt)  # type: ignore[arg-type]


def _example_bytes(name: str) -> bytes:
    return (EXAMPLES_DIR / name).read_bytes()


def _load(path: Path) -> tuple[str, int, Any]:
    tag, version = _tag_and_version(path)
    return tag, version, json.loads(path.read_text(encoding="utf-8"))


def _structs_in(value: object, found: set[type]) -> None:
    """Collect the Struct classes of value and everything nested in it."""
    if isinstance(value, msgspec.Struct):
        found.add(type(value))
        for name in value.__struct_fields__:
            _structs_in(getattr(value, name), found)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _structs_in(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            _structs_in(v, found)


def _reachable_structs() -> set[type]:
    """Every Struct class that can appear inside a device or server message."""
    found: set[type] = set()

    def walk(t: msgspec.inspect.Type) -> None:
        if isinstance(t, msgspec.inspect.StructType):
            if t.cls in found:
                return
            found.add(t.cls)
            for f in t.fields:
                walk(f.type)
        elif isinstance(t, msgspec.inspect.Metadata):
            walk(t.type)
        elif isinstance(t, msgspec.inspect.UnionType):
            for u in t.types:
                walk(u)
        elif isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)):
            walk(t.item_type)
        elif isinstance(t, msgspec.inspect.DictType):
            walk(t.key_type)
            walk(t.value_type)

    for t in msgspec.inspect.multi_type_info([DeviceMessage, ServerMessage, *DEVICE_REQUEST_TYPES]):
        walk(t)
    return found


#: The Struct types nested inside messages (GeoPoint, Credential, ...), not messages themselves.
NESTED_TYPES = sorted(_reachable_structs() - set(ALL_MESSAGE_TYPES), key=lambda c: c.__name__)


def _revisions() -> dict[str, list[tuple[int, Path]]]:
    """Every example file by type tag, oldest revision first."""
    out: dict[str, list[tuple[int, Path]]] = {}
    for path in EXAMPLE_FILES:
        tag, version = _tag_and_version(path)
        out.setdefault(tag, []).append((version, path))
    return {tag: sorted(files) for tag, files in out.items()}


def _shown_fields(decoded: object, raw: object, shown: dict[type, set[str]]) -> None:
    """Record, per Struct type, the fields an example writes out (walking the decoded value and its JSON together)."""
    if isinstance(decoded, msgspec.Struct) and isinstance(raw, dict):
        fields = {f.name: f.encode_name for f in msgspec.structs.fields(type(decoded))}
        shown.setdefault(type(decoded), set()).update(k for k in raw if k in fields.values())
        for name, key in fields.items():
            if key in raw:
                _shown_fields(getattr(decoded, name), raw[key], shown)
    elif isinstance(decoded, (list, tuple)) and isinstance(raw, list):
        for d, r in zip(decoded, raw, strict=True):
            _shown_fields(d, r, shown)
    elif isinstance(decoded, dict) and isinstance(raw, dict):
        for k, v in decoded.items():
            _shown_fields(v, raw[k], shown)


# --------------------------------------------------------------------------- the set of files


def test_examples_exist() -> None:
    assert EXAMPLE_FILES, f"no example payloads in {EXAMPLES_DIR}"


def test_device_and_server_tags_are_disjoint() -> None:
    assert not DEVICE_TAGS.keys() & SERVER_TAGS.keys()
    assert not REQUEST_TAGS.keys() & (DEVICE_TAGS.keys() | SERVER_TAGS.keys())


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_file_name_names_a_known_type(path: Path) -> None:
    tag, _ = _tag_and_version(path)
    assert tag in DEVICE_TAGS or tag in SERVER_TAGS or tag in REQUEST_TAGS, f"{path.name}: no message type has the tag {tag!r}"


@pytest.mark.parametrize("cls", ALL_MESSAGE_TYPES, ids=type_tag)
def test_every_message_type_has_an_example(cls: type) -> None:
    tag = type_tag(cls)
    files = [p for p in EXAMPLE_FILES if _tag_and_version(p)[0] == tag]
    assert files, f"message type {cls.__name__} has no example: add protocol/examples/{tag}.v<schema version>.json"


def test_every_nested_type_appears_in_an_example() -> None:
    found: set[type] = set()
    for path in EXAMPLE_FILES:
        _structs_in(_decode(_tag_and_version(path)[0], path.read_bytes(), "json"), found)
    missing = {cls.__name__ for cls in _reachable_structs() - found}
    assert not missing, f"types never shown in an example: {sorted(missing)}"


def test_examples_are_frozen() -> None:
    on_disk = {p.name: hashlib.sha256(p.read_bytes().replace(b"\r\n", b"\n")).hexdigest() for p in EXAMPLE_FILES}
    unlisted = sorted(on_disk.keys() - FROZEN_SHA256.keys())
    assert not unlisted, f"new example files must be added to FROZEN_SHA256: {unlisted}"
    removed = sorted(FROZEN_SHA256.keys() - on_disk.keys())
    assert not removed, f"frozen example files must never be deleted: {removed}"
    changed = sorted(name for name, digest in on_disk.items() if FROZEN_SHA256[name] != digest)
    assert not changed, f"frozen example files must never change (add a new <tag>.v<N>.json instead): {changed}"


# --------------------------------------------------------------------------- revisions of a type


def test_revisions_are_numbered_from_1_without_gaps() -> None:
    for tag, files in _revisions().items():
        versions = [v for v, _ in files]
        assert versions == list(range(1, len(versions) + 1)), f"{tag}: example revisions {versions}, expected 1..{len(versions)}"


@pytest.mark.parametrize("tag", sorted(_revisions()), ids=str)
def test_a_later_revision_keeps_every_field_of_the_earlier(tag: str) -> None:
    files = _revisions()[tag]
    for (_, older), (_, newer) in zip(files, files[1:]):
        dropped = _load(older)[2].keys() - _load(newer)[2].keys()
        assert not dropped, f"{newer.name} leaves out fields that {older.name} shows: {sorted(dropped)} (fields are never removed)"


@pytest.mark.parametrize("cls", ALL_MESSAGE_TYPES, ids=type_tag)
def test_the_newest_revision_shows_every_field(cls: type) -> None:
    """A field added to a message type needs a new example revision that shows it."""
    tag = type_tag(cls)
    _, newest = _revisions()[tag][-1]
    missing = {f.encode_name for f in msgspec.structs.fields(cls)} - _load(newest)[2].keys()
    assert not missing, f"{newest.name} does not show {sorted(missing)}: add protocol/examples/{tag}.v<N+1>.json"


def test_every_field_of_every_nested_type_is_shown() -> None:
    shown: dict[type, set[str]] = {}
    for path in EXAMPLE_FILES:
        tag, _, raw = _load(path)
        _shown_fields(_decode(tag, path.read_bytes(), "json"), raw, shown)
    missing = {
        f"{cls.__name__}.{f.encode_name}" for cls in NESTED_TYPES for f in msgspec.structs.fields(cls) if f.encode_name not in shown.get(cls, set())
    }
    assert not missing, f"fields never shown in an example: {sorted(missing)}"


@pytest.mark.parametrize("cls", ALL_MESSAGE_TYPES, ids=type_tag)
def test_todays_writer_labels_its_messages_with_the_newest_revision(cls: type) -> None:
    """A type whose layout changed needs a new example revision, and its writer says so in ``schema``."""
    newest, _ = _revisions()[type_tag(cls)][-1]
    default = next(f.default for f in msgspec.structs.fields(cls) if f.name == "schema")
    assert default == newest, f"{cls.__name__} writes schema {default}, its newest example is revision {newest}"


# --------------------------------------------------------------------------- each file


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_decodes_with_todays_code(path: Path) -> None:
    tag, version, raw = _load(path)
    assert isinstance(raw, dict) and raw.get("type") == tag
    msg = _decode(tag, path.read_bytes(), "json")
    assert type_tag(type(msg)) == tag
    assert isinstance(msg, (DEVICE_TAGS | SERVER_TAGS | REQUEST_TAGS)[tag])
    assert msg.schema == version, f"{path.name}: the file name says schema {version}, the body says {msg.schema}"


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_round_trips(path: Path, fmt: str) -> None:
    tag, _ = _tag_and_version(path)
    msg = _decode(tag, path.read_bytes(), "json")
    body = encode(msg, fmt)  # type: ignore[arg-type]
    again = _decode(tag, body, fmt)
    assert again == msg
    assert encode(again, fmt) == body  # type: ignore[arg-type]


def _assert_shown_kept(name: str, at: str, decoded: Any, raw: Any) -> None:
    """Every field the file shows, at every level, decodes to what it shows (defaults of later fields aside)."""
    if isinstance(raw, dict):
        assert isinstance(decoded, dict), f"{name}: {at} decodes to {decoded!r}, not an object"
        for key, value in raw.items():
            assert key in decoded, f"{name}: field {at}.{key} is unknown to today's code"
            _assert_shown_kept(name, f"{at}.{key}", decoded[key], value)
    elif isinstance(raw, list):
        assert isinstance(decoded, list) and len(decoded) == len(raw), f"{name}: {at} decodes to {decoded!r}, not {raw!r}"
        for i, (d, r) in enumerate(zip(decoded, raw, strict=True)):
            _assert_shown_kept(name, f"{at}[{i}]", d, r)
    else:
        assert decoded == raw, f"{name}: field {at} decodes to {decoded!r}, not {raw!r}"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_keeps_every_field_it_shows(path: Path) -> None:
    """Nothing in the file is silently dropped: each of its fields, nested ones too, is a field of the message."""
    tag, _, raw = _load(path)
    decoded = msgspec.to_builtins(_decode(tag, path.read_bytes(), "json"))
    _assert_shown_kept(path.name, "$", decoded, raw)


def test_an_older_revision_reads_with_the_defaults_of_later_fields() -> None:
    """receipt.v1 items have no log_index; device messages of revision 1 have no prev_hash."""
    receipt = decode_server_body(_example_bytes("receipt.v1.json"), "json")
    assert isinstance(receipt, Receipt) and receipt.schema == 1
    assert [item.log_index for item in receipt.items] == [None, None]
    for path in EXAMPLE_FILES:
        tag, version = _tag_and_version(path)
        if tag in DEVICE_TAGS and version < PREV_HASH_REVISION[tag]:
            assert decode_device_body(path.read_bytes(), "json").prev_hash is None, path.name


# Unified social credit code (GB 32100-2015): the 18th character is a check character.
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{18}$")


def _uscc_check_char(first17: str) -> str:
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def test_uscc_check_character_on_published_codes() -> None:
    # Two real, publicly listed codes (Tencent's and Huawei's Shenzhen companies) pin the algorithm.
    assert _uscc_check_char("9144030071526726X") == "G"
    assert _uscc_check_char("91440300192203821") == "6"


def test_example_credit_codes_are_valid() -> None:
    codes: list[str] = []

    def walk(v: object) -> None:
        if isinstance(v, str):
            codes.extend(re.findall(r"(?<![0-9A-Z])[0-9A-HJ-NPQRTUWXY]{18}(?![0-9A-Z])", v))
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)

    for path in EXAMPLE_FILES:
        walk(_load(path)[2])
    assert len(codes) >= 5
    bad = [c for c in codes if not _USCC.match(c) or _uscc_check_char(c[:17]) != c[17]]
    assert not bad, f"credit codes with a wrong GB 32100 check character: {bad}"


# --------------------------------------------------------------------------- the device chain (prev_hash)


#: The revision of each device message type that added prev_hash (media_integrity had it from the start).
PREV_HASH_REVISION = {**dict.fromkeys(DEVICE_TAGS, 2), "enterprise_scanned": 3, "media_integrity": 1}

#: The worked example of README section 5.2: seq 1 and seq 2 of one phone.
CHAIN_SEQ1, CHAIN_SEQ2 = "device_status.v2.json", "enterprise_scanned.v3.json"
CHAIN_SEQ1_SHA256 = "983bb68f0831671139690908f1f547f65ac0c729e90c8020776b365975908441"


def _signed_body(path: Path) -> bytes:
    """The body a JSON device signed for this example: the file's object as compact JSON, UTF-8, keys in file order."""
    return json.dumps(_load(path)[2], ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _chained_examples() -> list[Path]:
    """The device examples written at or after the revision that added prev_hash."""
    return [p for p in EXAMPLE_FILES if (t := _tag_and_version(p))[0] in DEVICE_TAGS and t[1] >= PREV_HASH_REVISION[t[0]]]


def test_prev_hash_revisions_are_known() -> None:
    assert PREV_HASH_REVISION.keys() == DEVICE_TAGS.keys()
    for tag, cls in DEVICE_TAGS.items():
        assert "prev_hash" in {f.encode_name for f in msgspec.structs.fields(cls)}
        assert _revisions()[tag][-1][0] >= PREV_HASH_REVISION[tag], f"{tag}: no example revision shows prev_hash"


@pytest.mark.parametrize("path", _chained_examples(), ids=lambda p: p.name)
def test_a_chained_example_is_its_signed_body_pretty_printed(path: Path) -> None:
    """So the hash of an example's body can be recomputed from the file alone (and by today's encoder)."""
    tag, _, raw = _load(path)
    assert "prev_hash" in raw
    assert encode(_decode(tag, path.read_bytes(), "json"), "json") == _signed_body(path)


def test_the_prev_hash_of_every_example_links_to_its_predecessor_example() -> None:
    by_seq = {(raw["device_id"], raw["seq"]): path for path in _chained_examples() for raw in [_load(path)[2]]}
    links = 0
    for (device_id, seq), path in sorted(by_seq.items()):
        before = by_seq.get((device_id, seq - 1))
        if before is not None:
            assert _load(path)[2]["prev_hash"] == hashlib.sha256(_signed_body(before)).hexdigest(), f"{path.name} does not link to {before.name}"
            links += 1
    assert links >= 5


def test_a_chain_starts_with_null() -> None:
    first = _load(EXAMPLES_DIR / CHAIN_SEQ1)[2]
    assert first["seq"] == 1 and first["prev_hash"] is None
    restart = _load(EXAMPLES_DIR / "device_alarm.v2.json")[2]  # the first event of a new outbox
    assert restart["alarm"] == "outbox_corrupt" and restart["seq"] > 1 and restart["prev_hash"] is None
    assert restart["lost_seq_to"] == restart["seq"] - 1


def test_readme_prev_hash_worked_example() -> None:
    body1 = _signed_body(EXAMPLES_DIR / CHAIN_SEQ1)
    assert body1 == encode(decode_device_body(_example_bytes(CHAIN_SEQ1), "json"), "json")
    assert hashlib.sha256(body1).hexdigest() == CHAIN_SEQ1_SHA256
    second = _load(EXAMPLES_DIR / CHAIN_SEQ2)[2]
    assert second["device_id"] == _load(EXAMPLES_DIR / CHAIN_SEQ1)[2]["device_id"] and second["seq"] == 2
    assert second["prev_hash"] == CHAIN_SEQ1_SHA256
    section = _readme_section("### 5.2 ")
    assert body1.decode("utf-8") in section
    assert f"{len(body1)} bytes" in section
    assert section.count(CHAIN_SEQ1_SHA256) >= 2  # the hash computed, and the prev_hash of seq 2
    assert f'"prev_hash":"{CHAIN_SEQ1_SHA256}"' in section


def test_media_integrity_example_names_the_media_captured_example() -> None:
    captured = _load(EXAMPLES_DIR / "media_captured.v2.json")[2]
    changed = _load(EXAMPLES_DIR / "media_integrity.v1.json")[2]
    assert changed["media_event_id"] == captured["event_id"] and changed["device_id"] == captured["device_id"]
    assert changed["file_name"] == captured["file_name"] and changed["sha256_expected"] == captured["sha256"]
    assert changed["sha256_now"] != changed["sha256_expected"] and changed["size_now"] != captured["size_bytes"]


def test_receipt_v2_names_the_chained_examples() -> None:
    receipt = _load(EXAMPLES_DIR / "receipt.v2.json")[2]
    events = {(raw["event_id"], raw["seq"]) for path in _chained_examples() for raw in [_load(path)[2]] if raw["device_id"] == receipt["device_id"]}
    assert {(i["event_id"], i["seq"]) for i in receipt["items"]} <= events
    assert {i["status"] for i in receipt["items"]} == {"stored", "duplicate"}
    assert all(isinstance(i["log_index"], int) for i in receipt["items"])


# --------------------------------------------------------------------------- evolution rules


#: Fields that are maps (free keys), not objects with named fields: nothing is "unknown" in them.
MAP_FIELDS = {"settings", "code_keys"}


def _with_unknown_fields(value: Any) -> Any:
    """A copy with an unknown field added to every object (as a newer peer might send)."""
    if isinstance(value, dict):
        copy = {k: v if k in MAP_FIELDS else _with_unknown_fields(v) for k, v in value.items()}
        return {**copy, "x_added_in_v9": {"nested": [1, "two", None]}}
    if isinstance(value, list):
        return [_with_unknown_fields(v) for v in value]
    return value


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_unknown_fields_are_ignored(path: Path, fmt: str) -> None:
    tag, _, raw = _load(path)
    newer = _with_unknown_fields(raw)
    body = msgspec.json.encode(newer) if fmt == "json" else msgspec.msgpack.encode(newer)
    assert _decode(tag, body, fmt) == _decode(tag, path.read_bytes(), "json")


def test_a_newer_schema_version_is_read() -> None:
    raw = _load(EXAMPLES_DIR / "enterprise_scanned.v2.json")[2]
    msg = decode_device_body(msgspec.json.encode({**raw, "schema": 99, "added_later": "x"}), "json")
    assert msg.schema == 99


def test_omitted_optional_fields_take_their_defaults() -> None:
    raw = _load(EXAMPLES_DIR / "enterprise_scanned.v1.json")[2]
    required = {"type", "event_id", "device_id", "seq", "device_time_ms", "clock_error_ms", "officer_id", "code_text"}
    msg = decode_device_body(msgspec.json.encode({k: v for k, v in raw.items() if k in required}), "json")
    assert isinstance(msg, EnterpriseScanned)
    # A message without ``schema`` is read as the revision the reader implements (the field's default).
    assert msg.schema == next(f.default for f in msgspec.structs.fields(EnterpriseScanned) if f.name == "schema")
    assert msg.clock_source == "rtc" and msg.credit_code is None and msg.reason == "" and msg.location is None
    assert msg.field is None and msg.matter == "" and msg.exception_basis is None


def test_a_revision_1_scan_decision_gets_the_revision_2_defaults() -> None:
    msg = decode_server_body(_example_bytes("scan_decision.v1.json"), "json")
    assert isinstance(msg, ScanDecision)
    assert msg.joined_agency_id is None and msg.exception_used is False and msg.warnings == []


WRONG = [
    pytest.param("enterprise_scanned.v1.json", ["seq"], "884", "$.seq", id="seq_as_string"),
    pytest.param("enterprise_scanned.v1.json", ["seq"], 0, "$.seq", id="seq_zero"),
    pytest.param("enterprise_scanned.v1.json", ["seq"], 884.0, "$.seq", id="seq_as_float"),
    pytest.param("enterprise_scanned.v1.json", ["device_time_ms"], -1, "$.device_time_ms", id="negative_time"),
    pytest.param("enterprise_scanned.v1.json", ["clock_source"], None, "$.clock_source", id="null_not_allowed"),
    pytest.param("enterprise_scanned.v1.json", ["clock_source"], "sundial", "$.clock_source", id="unknown_enum_value"),
    pytest.param("enterprise_scanned.v1.json", ["device_id"], "phone/22", "$.device_id", id="slash_in_device_id"),
    pytest.param("enterprise_scanned.v1.json", ["credit_code"], "91310115MA1H7K2P4I", "$.credit_code", id="credit_code_bad_char"),
    pytest.param("enterprise_scanned.v1.json", ["credit_code"], "91310115MA1H7K2P4W\n", "$.credit_code", id="trailing_newline_code"),
    pytest.param("enterprise_scanned.v1.json", ["device_id"], "phone-310115-xf-0022\n", "$.device_id", id="trailing_newline_id"),
    pytest.param("enterprise_scanned.v1.json", ["event_id"], "0195a6f3-7ef6-708a-aebc-0bc6b2d87b57\n", "$.event_id", id="trailing_newline_event"),
    pytest.param("enterprise_scanned.v1.json", ["location", "lat"], "31.2", "$.location.lat", id="lat_as_string"),
    pytest.param("enterprise_scanned.v1.json", ["location", "lat"], 91.0, "$.location.lat", id="lat_out_of_range"),
    pytest.param("inspection_started.v1.json", ["exception_basis", "kind"], "hunch", "$.exception_basis.kind", id="nested_enum"),
    pytest.param("media_captured.v1.json", ["sha256"], "BD3C" + "0" * 60, "$.sha256", id="upper_case_hash"),
    pytest.param("media_captured.v1.json", ["sha256"], "0" * 64 + "\n", "$.sha256", id="trailing_newline_hash"),
    pytest.param("device_status.v1.json", ["battery_pct"], 101, "$.battery_pct", id="battery_over_100"),
    pytest.param("receipt.v1.json", ["items", 0, "status"], "lost", "$.items[0].status", id="receipt_status"),
    pytest.param("receipt.v1.json", ["items"], {"event_id": "x"}, "$.items", id="object_for_list"),
    pytest.param("config_update.v1.json", ["settings", "mqtt.keepalive_s"], [45], "$.settings", id="list_for_setting"),
    pytest.param("list_snapshot.v1.json", ["entries", 1], 91310115, "$.entries[1]", id="int_for_string_in_list"),
    pytest.param("enterprise_scanned.v2.json", ["exception_basis", "kind"], "hunch", "$.exception_basis.kind", id="scan_exception_kind"),
    pytest.param("enterprise_scanned.v2.json", ["field"], ["food_safety"], "$.field", id="list_for_field"),
    pytest.param("provisional_decision.v1.json", ["outcome"], "maybe", "$.outcome", id="provisional_outcome"),
    pytest.param("provisional_decision.v1.json", ["snapshot_version"], -1, "$.snapshot_version", id="negative_snapshot_version"),
    pytest.param("scan_decision.v2.json", ["warnings", 0, "code"], None, "$.warnings[0].code", id="warning_without_code"),
    pytest.param("scan_decision.v2.json", ["exception_used"], "yes", "$.exception_used", id="string_for_bool"),
    pytest.param("device_status.v2.json", ["prev_hash"], "983BB68F" + "0" * 56, "$.prev_hash", id="upper_case_prev_hash"),
    pytest.param("enterprise_scanned.v3.json", ["prev_hash"], "ab" * 32 + "\n", "$.prev_hash", id="trailing_newline_prev_hash"),
    pytest.param("enterprise_scanned.v3.json", ["prev_hash"], "ab" * 31, "$.prev_hash", id="short_prev_hash"),
    pytest.param("media_integrity.v1.json", ["problem"], "renamed", "$.problem", id="integrity_problem"),
    pytest.param("media_integrity.v1.json", ["sha256_now"], "7D20" + "0" * 60, "$.sha256_now", id="integrity_upper_case_hash"),
    pytest.param("media_integrity.v1.json", ["size_now"], -1, "$.size_now", id="integrity_negative_size"),
    pytest.param("media_integrity.v1.json", ["media_event_id"], None, "$.media_event_id", id="integrity_without_media_event"),
    pytest.param("receipt.v2.json", ["items", 0, "log_index"], -1, "$.items[0].log_index", id="negative_log_index"),
    pytest.param("receipt.v2.json", ["items", 1, "log_index"], "48231", "$.items[1].log_index", id="log_index_as_string"),
    pytest.param("decision_snapshot.v1.json", ["part"], 0, "$.part", id="part_zero"),
    pytest.param("decision_snapshot.v1.json", ["policy", "join_window_hours"], "8h", "$.policy.join_window_hours", id="policy_hours_string"),
    pytest.param("decision_snapshot.v1.json", ["code_keys", "K1"], 1, "$.code_keys[...]", id="int_for_key"),
    pytest.param("decision_snapshot.v1.json", ["credentials", 1, "fields"], "fire_safety", "$.credentials[1].fields", id="string_for_fields"),
    pytest.param("decision_snapshot.v1.json", ["no_disturb", 0, "credit_code"], "91110108MA01R8KX3", "$.no_disturb[0].credit_code", id="short_credit_code"),
    pytest.param("decision_snapshot.v1.json", ["open_inspections", 0, "started_ms"], None, "$.open_inspections[0].started_ms", id="null_start"),
]


@pytest.mark.parametrize(("name", "where", "value", "at"), WRONG)
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_wrong_field_type_or_value_is_a_schema_error(name: str, where: list[Any], value: Any, at: str, fmt: str) -> None:
    tag, _, raw = _load(EXAMPLES_DIR / name)
    target = raw
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    body = msgspec.json.encode(raw) if fmt == "json" else msgspec.msgpack.encode(raw)
    with pytest.raises(ProtocolError) as err:
        _decode(tag, body, fmt)
    assert err.value.code == "schema"
    assert at in str(err.value)


@pytest.mark.parametrize(
    "change",
    [
        {"type": "inspection_paused"},
        {"type": None},
        {"type": "receipt"},  # a server tag is not a device message
    ],
    ids=["unknown_tag", "null_tag", "server_tag"],
)
def test_unknown_type_tag_is_a_schema_error(change: dict[str, Any]) -> None:
    raw = _load(EXAMPLES_DIR / "enterprise_scanned.v1.json")[2]
    with pytest.raises(ProtocolError) as err:
        decode_device_body(msgspec.json.encode({**raw, **change}), "json")
    assert err.value.code == "schema"


def test_missing_required_field_is_a_schema_error() -> None:
    raw = _load(EXAMPLES_DIR / "receipt.v1.json")[2]
    del raw["device_id"]
    with pytest.raises(ProtocolError) as err:
        decode_server_body(msgspec.json.encode(raw), "json")
    assert err.value.code == "schema"
    assert "device_id" in str(err.value)


# --------------------------------------------------------------------------- the README documents every type


README = EXAMPLES_DIR.parent / "README.md"


def _readme_section(heading_start: str) -> str:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(heading_start)]
    assert len(starts) == 1, f"README.md needs exactly one heading starting with {heading_start!r}"
    end = next((i for i in range(starts[0] + 1, len(lines)) if lines[i].startswith("## ") or lines[i].startswith("### ")), len(lines))
    return "\n".join(lines[starts[0] : end])


@pytest.mark.parametrize("cls", ALL_MESSAGE_TYPES, ids=type_tag)
def test_readme_documents_every_field_of_every_type(cls: type) -> None:
    tag = type_tag(cls)
    section = _readme_section(f"### `{tag}` ")
    common = {f.name for f in msgspec.structs.fields(cls.__mro__[1])}
    for f in msgspec.structs.fields(cls):
        if f.name not in common:
            assert f"| `{f.encode_name}` |" in section, f"README.md section for {tag} has no row for {f.encode_name}"


@pytest.mark.parametrize(("heading", "base"), [("### 5.1 ", DeviceEvent), ("### 6.1 ", ServerNotice)], ids=["device", "server"])
def test_readme_documents_the_common_fields(heading: str, base: type) -> None:
    section = _readme_section(heading)
    for f in msgspec.structs.fields(base):
        assert f"| `{f.encode_name}` |" in section
    assert "| `type` |" in section


def test_the_nested_types_are_known() -> None:
    assert {GeoPoint, ExceptionBasis, ReceiptItem, RejectionItem} <= set(NESTED_TYPES)
    names = {c.__name__ for c in NESTED_TYPES}
    assert {"DecisionWarning", "Credential", "InspectionRef", "NoDisturbEntry", "SnapshotPolicy"} <= names


@pytest.mark.parametrize("cls", NESTED_TYPES, ids=lambda c: c.__name__)
def test_readme_documents_the_nested_types(cls: type) -> None:
    name = cls.__name__
    text = README.read_text(encoding="utf-8")
    heading = f"### {name}" if f"### {name}" in text else f"**{name}**"
    start = text.index(heading)
    table = text[start : text.index("\n\n", text.index("|", start))]
    for f in msgspec.structs.fields(cls):
        assert f"| `{f.encode_name}` |" in table


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_readme_shows_every_example_verbatim(path: Path) -> None:
    assert path.read_text(encoding="utf-8").rstrip("\n") in README.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the time exchange (README §8.1)


def test_the_time_exchange_example() -> None:
    """The worked example of README §8.1: t1..t4 give an offset of 37 ms, ± 25 ms."""
    req = decode_time_request(_example_bytes("time_request.v1.json"), "json")
    answer = decode_server_body(_example_bytes("time_response.v1.json"), "json")
    assert isinstance(answer, TimeResponse) and answer.nonce == req.nonce and answer.request_device_time_ms == req.device_time_ms
    est = estimate(answer, req.device_time_ms, 1742263800170)
    assert (est.offset_ms, est.error_ms, est.round_trip_ms) == (37, 25, 50)


def test_a_time_request_is_not_an_event() -> None:
    """Published on the up topic by mistake, it is refused as 'schema' (no seq): never stored, never receipted."""
    with pytest.raises(ProtocolError) as e:
        decode_device_body(_example_bytes("time_request.v1.json"), "json")
    assert e.value.code == "schema"


@pytest.mark.parametrize(
    ("change", "t4", "why"),
    [
        ({}, 1742263800120 + MAX_ROUND_TRIP_MS + 1, "round trip"),  # the answer waited (broker session, queue)
        ({"request_device_time_ms": 1742263800119}, 1742263800170, "echoes"),  # not the answer to this request
        ({"received_ms": 1742263800184}, 1742263800170, "not in order"),
    ],
)
def test_an_answer_that_cannot_be_used(change: dict[str, int], t4: int, why: str) -> None:
    answer = msgspec.structs.replace(decode_server_body(_example_bytes("time_response.v1.json"), "json"), **change)
    with pytest.raises(ValueError, match=why):
        estimate(answer, 1742263800120, t4)  # type: ignore[arg-type]
