"""Envelope decoding: format sniffing and the stable error codes a server files rejected payloads under."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import protocol
from protocol.codec import (
    MAX_PAYLOAD_BYTES,
    ProtocolError,
    decode_device_body,
    decode_server_body,
    encode,
    open_envelope,
    seal,
    sniff_format,
)
from protocol.messages import Envelope
from protocol.signing import SigningKey

EXAMPLES_DIR = Path(protocol.__file__).resolve().parent / "examples"
SIG = bytes(range(64))


def _scan() -> object:
    return decode_device_body((EXAMPLES_DIR / "enterprise_scanned.v1.json").read_bytes(), "json")


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize(
    ("first", "fmt"),
    [(b"{", "json"), *[(bytes([b]), "msgpack") for b in range(0x80, 0x90)], (b"\xde", "msgpack"), (b"\xdf", "msgpack")],
)
def test_sniff_format(first: bytes, fmt: str) -> None:
    assert sniff_format(first + b"rest") == fmt


def test_sniff_empty_payload() -> None:
    with pytest.raises(ProtocolError) as err:
        sniff_format(b"")
    assert err.value.code == "undecodable"
    assert "empty" in str(err.value)


@pytest.mark.parametrize(
    "payload",
    [
        b" {}",  # no leading whitespace
        b"\xef\xbb\xbf{}",  # no UTF-8 byte order mark
        b"[]",  # a JSON array is not an envelope
        b'"text"',
        b"\x90",  # MessagePack array
        b"\x92\xc4\x00\xc4\x00",
        b"\xc0",  # MessagePack nil
        b"\x00",
        b"online",  # a presence payload is never an envelope
    ],
)
def test_sniff_rejects_anything_but_an_object_or_a_map(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        sniff_format(payload)
    assert err.value.code == "undecodable"
    assert f"0x{payload[0]:02x}" in str(err.value)


def test_protocol_error_is_a_value_error_with_a_code() -> None:
    e = ProtocolError("schema", "details")
    assert isinstance(e, ValueError) and e.code == "schema" and str(e) == "details"


# --------------------------------------------------------------------------- size


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_payload_of_exactly_the_limit_is_accepted(fmt: str) -> None:
    body = b"x" * 1000
    if fmt == "json":  # JSON allows trailing whitespace, so pad the envelope to the limit exactly
        payload = encode(Envelope(body=body, sig=SIG), "json")
        payload += b" " * (MAX_PAYLOAD_BYTES - len(payload))
    else:  # bin32 body sized to make the whole map exactly the limit
        overhead = len(encode(Envelope(body=b"", sig=SIG), "msgpack")) + 3  # 2-byte bin8 header -> 5-byte bin32 header
        payload = b"\x82\xa4body\xc6" + (MAX_PAYLOAD_BYTES - overhead).to_bytes(4, "big")
        payload += b"x" * (MAX_PAYLOAD_BYTES - overhead) + b"\xa3sig\xc4\x40" + SIG
    assert len(payload) == MAX_PAYLOAD_BYTES == 65536
    got_fmt, env = open_envelope(payload)
    assert got_fmt == fmt and env.sig == SIG


@pytest.mark.parametrize("first", [b"{", b"\x82", b"\x00"])
def test_oversized_payload(first: bytes) -> None:
    payload = first + b" " * MAX_PAYLOAD_BYTES
    with pytest.raises(ProtocolError) as err:
        open_envelope(payload)
    assert err.value.code == "oversized"
    assert str(MAX_PAYLOAD_BYTES) in str(err.value)


def test_a_real_oversized_message() -> None:
    scan = _scan()
    big = msgspec.structs.replace(scan, reason="长" * 4000, code_text="x" * 2000)  # within the field limits
    small_enough = seal(big, SigningKey.generate(), "msgpack")
    assert len(small_enough) <= MAX_PAYLOAD_BYTES
    open_envelope(small_enough)
    huge = Envelope(body=b"x" * MAX_PAYLOAD_BYTES, sig=SIG)
    with pytest.raises(ProtocolError) as err:
        open_envelope(encode(huge, "json"))
    assert err.value.code == "oversized"


# --------------------------------------------------------------------------- garbage and non-envelopes


@pytest.mark.parametrize(
    "payload",
    [
        b"{",
        b"{not json}",
        b'{"body":"e30=","sig":',
        encode(Envelope(body=b"{}", sig=SIG), "json") + b"garbage",  # trailing data after a valid envelope
        encode(Envelope(body=b"{}", sig=SIG), "json") + b"}",
        encode(Envelope(body=b"{}", sig=SIG), "msgpack") + b"\x00",
        b"\x82\xa4body",  # truncated MessagePack
        b"\x82\xa4body\xc4\x10abc",  # bin shorter than announced
        b"\xdf\xff\xff\xff\xff",  # a map announcing 4 billion entries
    ],
)
def test_garbage_is_undecodable(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        open_envelope(payload)
    assert err.value.code == "undecodable"


@pytest.mark.parametrize(
    "payload",
    [
        b"{}",
        b'{"hello":"world"}',
        b'{"body":"e30="}',  # no signature
        b'{"body":"e30=","sig":"AAAA"}',  # signature not 64 bytes
        b'{"body":"e30=","sig":null}',
        b'{"body":{"type":"device_status"},"sig":"' + b"A" * 86 + b'=="}',  # body must be base64 bytes, not an object
        b'{"body":"not base64!","sig":"' + b"A" * 86 + b'=="}',
        b'{"body":"e30","sig":"' + b"A" * 86 + b'=="}',  # base64 without padding
        b"\x80",  # empty MessagePack map
        msgspec.msgpack.encode({"body": "{}", "sig": "x" * 64}),  # MessagePack str where bin is required
        msgspec.msgpack.encode({"body": b"{}", "sig": b"x" * 63}),
    ],
)
def test_non_envelope_is_bad_envelope(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        open_envelope(payload)
    assert err.value.code == "bad_envelope"


def test_envelope_ignores_unknown_fields() -> None:
    payload = b'{"later":{"x":[1,2]},' + encode(Envelope(body=b"{}", sig=SIG), "json")[1:]
    assert open_envelope(payload) == ("json", Envelope(body=b"{}", sig=SIG))


def test_json_envelope_field_order_does_not_matter() -> None:
    normal = encode(Envelope(body=b"{}", sig=SIG), "json")
    as_dict = msgspec.json.decode(normal)
    swapped = msgspec.json.encode({"sig": as_dict["sig"], "body": as_dict["body"]})
    assert open_envelope(swapped) == open_envelope(normal)


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_body_that_is_not_valid_in_its_format_is_undecodable(fmt: str) -> None:
    body = b"\xc1" if fmt == "msgpack" else b"{oops"
    for decode in (decode_device_body, decode_server_body):
        with pytest.raises(ProtocolError) as err:
            decode(body, fmt)  # type: ignore[arg-type]
        assert err.value.code == "undecodable"


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize("where", ["tag", "field"])
def test_body_with_invalid_utf8_is_undecodable(fmt: str, where: str) -> None:
    raw = msgspec.to_builtins(_scan())
    if where == "tag":
        raw["type"] = "MARK"
    else:
        raw["officer_id"] = "MARK"
    body = (msgspec.json.encode(raw) if fmt == "json" else msgspec.msgpack.encode(raw)).replace(b"MARK", b"\xff\xfe\xfd\xfc")
    with pytest.raises(ProtocolError) as err:
        decode_device_body(body, fmt)  # type: ignore[arg-type]
    assert err.value.code == "undecodable"
    assert "UTF-8" in str(err.value)


def test_server_body_with_invalid_utf8_is_undecodable() -> None:
    body = b'{"type":"config_update","message_id":"abcdefgh","device_id":"d","server_time_ms":1,"config_version":1,"settings":{"\xff":1}}'
    with pytest.raises(ProtocolError) as err:
        decode_server_body(body, "json")
    assert err.value.code == "undecodable"


def test_device_body_in_the_wrong_format_is_rejected() -> None:
    body = encode(_scan(), "json")
    with pytest.raises(ProtocolError):
        decode_device_body(body, "msgpack")


def test_encode_defaults_to_json() -> None:
    scan = _scan()
    assert encode(scan) == encode(scan, "json") == msgspec.json.encode(scan)
    assert encode(scan, "msgpack") == msgspec.msgpack.encode(scan)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_seal_wraps_the_encoded_body(fmt: str) -> None:
    key = SigningKey.generate()
    scan = _scan()
    payload = seal(scan, key, fmt)  # type: ignore[arg-type]
    assert sniff_format(payload) == fmt
    _, env = open_envelope(payload)
    assert env.body == encode(scan, fmt)  # type: ignore[arg-type]
    assert len(env.sig) == 64
