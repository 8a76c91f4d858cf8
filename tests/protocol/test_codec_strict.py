"""What msgspec lets through but the protocol forbids: white space around a body, a key given twice, a credit code
with a wrong check character (protocol/README.md §3.2, §5, §7.6). Each is refused with a reason code."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import msgspec
import pytest

import protocol
from protocol import codec
from protocol.codec import ProtocolError, decode_device_body, encode, open_envelope, read_device_body, seal
from protocol.messages import DEVICE_MESSAGE_TYPES, EnterpriseScanned, Envelope, GeoPoint, InspectionStarted, type_tag
from protocol.signing import SigningKey

EXAMPLES_DIR = Path(protocol.__file__).resolve().parent / "examples"
DEVICE_TAGS = {type_tag(t) for t in DEVICE_MESSAGE_TYPES}
GOOD_CODE = "91110108MA04C6T21M"  # the spec's example enterprise (§5)
BAD_CODE = "91110108MA04C6T21A"  # the same with a wrong check character (issue 11)


def scan(**over: object) -> EnterpriseScanned:
    fields: dict[str, object] = dict(
        event_id=str(uuid.uuid4()), device_id="BR-00001", seq=1, device_time_ms=int(time.time() * 1000), clock_error_ms=100,
        officer_id="OFF-1", code_text="FE1:x", location=GeoPoint(lat=39.9, lon=116.3),
    )  # fmt: skip
    fields.update(over)
    return EnterpriseScanned(**fields)  # type: ignore[arg-type]


def refused(body: bytes, fmt: str = "json") -> ProtocolError:
    with pytest.raises(ProtocolError) as e:
        read_device_body(body, fmt)  # type: ignore[arg-type]
    return e.value


def mp_map(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """A MessagePack map from already encoded (key, value) pairs, repeats allowed (fixmap or map 16)."""
    head = bytes([0x80 | len(pairs)]) if len(pairs) < 16 else b"\xde" + len(pairs).to_bytes(2, "big")
    return head + b"".join(k + v for k, v in pairs)


def mp_pairs(msg: object) -> list[tuple[bytes, bytes]]:
    as_dict = msgspec.to_builtins(msg)
    return [(msgspec.msgpack.encode(k), msgspec.msgpack.encode(v)) for k, v in as_dict.items()]


# --------------------------------------------------------------------------- what stays accepted


@pytest.mark.parametrize("path", sorted(p for p in EXAMPLES_DIR.glob("*.json") if p.name.split(".")[0] in DEVICE_TAGS), ids=lambda p: p.name)
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_every_example_device_message_is_accepted(path: Path, fmt: str) -> None:
    msg = decode_device_body(path.read_bytes(), "json")
    assert read_device_body(encode(msg, fmt), fmt) == msg  # type: ignore[arg-type]


def test_the_same_key_in_different_objects_is_fine() -> None:
    body = json.dumps({**msgspec.to_builtins(scan()), "extension": {"seq": 7, "device_id": "x", "inner": [{"a": 1}, {"a": 2}]}}).encode()
    assert read_device_body(body.replace(b" ", b""), "json").seq == 1
    pairs = [*mp_pairs(scan()), (msgspec.msgpack.encode("extension"), mp_map([(msgspec.msgpack.encode("seq"), b"\x07")]))]
    assert read_device_body(mp_map(pairs), "msgpack").seq == 1


# --------------------------------------------------------------------------- white space


@pytest.mark.parametrize("around", [(b" ", b""), (b"\n", b""), (b"\xef\xbb\xbf", b""), (b"", b" "), (b"", b"\r\n"), (b"\t", b"\t")])
def test_white_space_around_a_json_body_is_undecodable(around: tuple[bytes, bytes]) -> None:
    body = around[0] + encode(scan()) + around[1]
    assert decode_device_body(body, "json") if not around[0].startswith(b"\xef") else True  # msgspec alone would take it
    err = refused(body)
    assert err.code == "undecodable" and "white space" in str(err)


def test_white_space_around_the_envelope_is_not_a_body_rule() -> None:
    payload = seal(scan(), SigningKey.generate())
    assert open_envelope(payload + b"\n")[1] == open_envelope(payload)[1]  # unsigned framing, as before (§3.2)
    with pytest.raises(ProtocolError) as e:
        open_envelope(b" " + payload)
    assert e.value.code == "undecodable"


# --------------------------------------------------------------------------- keys given twice


def test_two_device_id_keys_in_a_json_body_are_undecodable() -> None:
    body = encode(scan())
    forged = body[:-1] + b',"device_id":"BR-00002"}'
    assert decode_device_body(forged, "json").device_id == "BR-00002"  # msgspec alone keeps the last one
    err = refused(forged)
    assert err.code == "undecodable" and "'device_id' appears twice" in str(err)


def test_a_key_repeated_through_an_escape_or_in_a_nested_object_is_undecodable() -> None:
    body = encode(scan())
    assert refused(body[:-1] + b',"device\\u005fid":"BR-00002"}').code == "undecodable"
    nested = body.replace(b'"lat":39.9', b'"lat":39.9,"lat":0.0')
    assert nested != body
    err = refused(nested)
    assert err.code == "undecodable" and "'lat'" in str(err)


def test_a_key_repeated_in_a_msgpack_body_is_undecodable() -> None:
    pairs = mp_pairs(scan())
    again = (msgspec.msgpack.encode("device_id"), msgspec.msgpack.encode("BR-00002"))
    assert decode_device_body(mp_map([*pairs, again]), "msgpack").device_id == "BR-00002"
    err = refused(mp_map([*pairs, again]), "msgpack")
    assert err.code == "undecodable" and "'device_id' appears twice" in str(err)
    # the same key in another string encoding (str 8 instead of fixstr) is the same key
    str8 = b"\xd9\x09device_id"
    assert refused(mp_map([*pairs, (str8, msgspec.msgpack.encode("BR-00002"))]), "msgpack").code == "undecodable"


def test_a_key_repeated_in_a_nested_msgpack_map_or_a_non_string_key_is_undecodable() -> None:
    lat = (msgspec.msgpack.encode("lat"), msgspec.msgpack.encode(1.5))
    loc = mp_map([lat, (msgspec.msgpack.encode("lon"), msgspec.msgpack.encode(2.5)), lat])
    pairs = [(k, loc if k == msgspec.msgpack.encode("location") else v) for k, v in mp_pairs(scan())]
    assert refused(mp_map(pairs), "msgpack").code == "undecodable"
    odd = mp_map([*mp_pairs(scan()), (msgspec.msgpack.encode("extension"), mp_map([(b"\x01", b"\x02")]))])
    err = refused(odd, "msgpack")
    assert err.code == "undecodable" and "not a string" in str(err)


def test_a_key_repeated_in_an_envelope_is_undecodable() -> None:
    key = SigningKey.generate()
    body = encode(scan())
    env = json.loads(encode(Envelope(body=body, sig=key.sign(body))))
    payload = ('{"body":"%s","sig":"%s","body":"%s"}' % (env["body"], env["sig"], env["body"])).encode()
    with pytest.raises(ProtocolError) as e:
        open_envelope(payload)
    assert e.value.code == "undecodable"


# --------------------------------------------------------------------------- credit codes


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_a_credit_code_with_a_wrong_check_character_is_schema(fmt: str) -> None:
    assert read_device_body(encode(scan(credit_code=GOOD_CODE), fmt), fmt).credit_code == GOOD_CODE  # type: ignore[arg-type, union-attr]
    err = refused(encode(scan(credit_code=BAD_CODE), fmt), fmt)
    assert err.code == "schema" and "expected M, got A" in str(err)
    started = InspectionStarted(
        event_id=str(uuid.uuid4()), device_id="BR-00001", seq=2, device_time_ms=1, clock_error_ms=1, inspection_id=str(uuid.uuid4()),
        officer_id="OFF-1", agency_id="AG-1", credit_code=BAD_CODE, field="food_safety",
    )  # fmt: skip
    assert refused(encode(started, fmt), fmt).code == "schema"


@pytest.mark.parametrize("code", ["91110108MA04C6T21m", "９1110108MA04C6T21M", "91110108MA04C6T2IM", "91110108MA04C6T21"])
def test_a_credit_code_not_of_the_charset_is_schema(code: str) -> None:
    assert refused(encode(scan(credit_code=code))).code == "schema"


def test_a_key_repeated_in_a_msgpack_envelope_is_undecodable() -> None:
    key = SigningKey.generate()
    body = encode(scan(), "msgpack")
    b, sig = msgspec.msgpack.encode("body"), msgspec.msgpack.encode("sig")
    good = mp_map([(b, msgspec.msgpack.encode(body)), (sig, msgspec.msgpack.encode(key.sign(body)))])
    assert open_envelope(good)[1].body == body
    with pytest.raises(ProtocolError) as e:
        open_envelope(mp_map([(b, msgspec.msgpack.encode(b"other")), (sig, msgspec.msgpack.encode(key.sign(body))), (b, msgspec.msgpack.encode(body))]))
    assert e.value.code == "undecodable"


def test_checking_an_unsigned_envelope_costs_little_whatever_it_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before its signature is checked, an envelope full of objects or values is not walked one by one."""
    env = json.loads(encode(Envelope(body=b"{}", sig=bytes(64))))
    few = json.dumps({**env, "extra": [{}] * 63}, separators=(",", ":")).encode()
    assert open_envelope(few)[1].body == b"{}"
    many = json.dumps({**env, "extra": [{}] * 20000}, separators=(",", ":")).encode()
    with pytest.raises(ProtocolError) as e:
        open_envelope(many)
    assert e.value.code == "undecodable" and "at most 64 objects" in str(e.value)
    ints = 60000
    packed = mp_map([(msgspec.msgpack.encode("body"), msgspec.msgpack.encode(b"{}")), (msgspec.msgpack.encode("sig"), msgspec.msgpack.encode(bytes(64))),
                     (msgspec.msgpack.encode("extra"), b"\xdd" + ints.to_bytes(4, "big") + b"\x01" * ints)])  # fmt: skip

    def walk(data: bytes) -> None:
        raise AssertionError("the Python walk over every value (about 10 ms for 60,000) ran on an unsigned envelope")

    monkeypatch.setattr(codec, "_msgpack_repeated_key", walk)
    assert open_envelope(packed)[1].body == b"{}"  # msgspec alone checks its own keys


# --------------------------------------------------------------------------- NUL characters


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_a_nul_character_in_any_text_value_is_schema(fmt: str) -> None:
    """PostgreSQL cannot keep U+0000 in text, and no field needs it: refused on every backend alike (§4)."""
    for bad in (scan(code_text="FE1:\x00x"), scan(officer_id="OFF\x00-1"), scan(matter="检查\x00")):
        err = refused(encode(bad, fmt), fmt)
        assert err.code == "schema" and "U+0000" in str(err)
    assert read_device_body(encode(scan(code_text="FE1:\\u0000 is text, not a NUL"), fmt), fmt).code_text.endswith("NUL")  # type: ignore[arg-type, union-attr]
