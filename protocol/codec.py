"""Encoding, sealing and opening of envelopes, in JSON (default) or MessagePack.

A published payload is an ``Envelope`` ``{"body": <bytes>, "sig": <bytes>}`` in the sender's wire
format (in JSON, bytes are standard base64). ``body`` is the message encoded in the same format.
The format is recognised from the first byte: a JSON envelope starts with ``{`` (0x7B); a MessagePack
envelope is a map (0x80-0x8F or 0xDE/0xDF). The server answers a device in the format it used.
"""

from __future__ import annotations

import json
from typing import Literal, TypeVar

import msgspec

from protocol.creditcode import check_character
from protocol.messages import DeviceMessage, Envelope, ServerMessage
from protocol.signing import SigningKey, VerifyKey

WireFormat = Literal["json", "msgpack"]
WIRE_FORMATS: tuple[WireFormat, ...] = ("json", "msgpack")

#: Largest payload a server accepts; media files never travel over MQTT, only their metadata.
MAX_PAYLOAD_BYTES = 64 * 1024

T = TypeVar("T")
_SCHEMA_MISMATCH = ("schema", "body does not match the message schema")
_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()
_envelope_decoders = {"json": msgspec.json.Decoder(Envelope), "msgpack": msgspec.msgpack.Decoder(Envelope)}
_device_decoders = {"json": msgspec.json.Decoder(DeviceMessage), "msgpack": msgspec.msgpack.Decoder(DeviceMessage)}
_server_decoders = {"json": msgspec.json.Decoder(ServerMessage), "msgpack": msgspec.msgpack.Decoder(ServerMessage)}


class ProtocolError(ValueError):
    """A payload that cannot be accepted; ``code`` is a stable machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def encode(obj: object, fmt: WireFormat = "json") -> bytes:
    """Encode a Struct in the given wire format."""
    return _json_encoder.encode(obj) if fmt == "json" else _msgpack_encoder.encode(obj)


def sniff_format(payload: bytes) -> WireFormat:
    """The wire format of an envelope, from its first byte."""
    if not payload:
        raise ProtocolError("undecodable", "empty payload")
    first = payload[0]
    if first == 0x7B:
        return "json"
    if 0x80 <= first <= 0x8F or first in (0xDE, 0xDF):
        return "msgpack"
    raise ProtocolError("undecodable", f"payload starts with byte 0x{first:02x}: neither a JSON object nor a MessagePack map")


def seal(message: object, key: SigningKey, fmt: WireFormat = "json") -> bytes:
    """The payload to publish: the message encoded, signed and wrapped in an envelope."""
    return seal_with_body(message, key, fmt)[0]


def seal_with_body(message: object, key: SigningKey, fmt: WireFormat = "json") -> tuple[bytes, bytes]:
    """(payload, body): the envelope to publish and the exact body bytes it signs (for hash chains)."""
    body = encode(message, fmt)
    return encode(Envelope(body=body, sig=key.sign(body)), fmt), body


def _decode(decoder: msgspec.json.Decoder[T] | msgspec.msgpack.Decoder[T], data: bytes, fmt: WireFormat, what: str, mismatch: tuple[str, str]) -> T:
    """Run a decoder; every way the bytes can be wrong becomes a ProtocolError that says why.

    ``mismatch`` is the (code, text) for well-formed data of the wrong shape.
    """
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as e:
        raise ProtocolError(mismatch[0], f"{mismatch[1]}: {e}") from None
    except msgspec.DecodeError as e:
        raise ProtocolError("undecodable", f"{what} is not valid {fmt}: {e}") from None
    except UnicodeDecodeError as e:  # msgspec reports invalid UTF-8 in some strings this way
        raise ProtocolError("undecodable", f"{what} is not valid {fmt}: invalid UTF-8: {e}") from None
    except RecursionError:  # msgspec reports nesting deeper than Python's recursion limit this way
        raise ProtocolError("undecodable", f"{what} is not acceptable {fmt}: arrays or objects nested too deeply") from None


def open_envelope(payload: bytes) -> tuple[WireFormat, Envelope]:
    """Decode an envelope (not yet verified); ProtocolError (oversized, undecodable, bad_envelope) says why not."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError("oversized", f"payload of {len(payload)} bytes exceeds the limit of {MAX_PAYLOAD_BYTES}")
    fmt = sniff_format(payload)  # (white space after an envelope is allowed: it is not signed, and no bytes are lost)
    env = _decode(_envelope_decoders[fmt], payload, fmt, "payload", ("bad_envelope", "not an envelope"))
    if encode(env, fmt) != payload:  # bytes equal to our own encoding hold no key twice (fast path: ~1 us, not ~15)
        _require_unique_keys(payload, fmt, "payload", envelope=True)
    return fmt, env


def decode_device_body(body: bytes, fmt: WireFormat) -> DeviceMessage:
    """Decode the body of a device envelope into its message type; ProtocolError (undecodable, schema) says why not.

    Lenient about what msgspec accepts (white space, repeated keys): for reading stored records. The
    ingest uses ``read_device_body``.
    """
    return _decode(_device_decoders[fmt], body, fmt, "body", _SCHEMA_MISMATCH)


def read_device_body(body: bytes, fmt: WireFormat) -> DeviceMessage:
    """A device's signed body as the server accepts it (protocol/README.md §3.2, §5): decode_device_body, and
    also refuse white space around the body and repeated keys (``undecodable``) and a credit code whose check
    character is wrong (``schema``), which msgspec does not check."""
    _require_one_object(body, fmt, "body")
    msg = _decode(_device_decoders[fmt], body, fmt, "body", _SCHEMA_MISMATCH)
    if encode(msg, fmt) != body:  # the canonical encoding of a Struct never repeats a key: only other bytes are scanned
        _require_unique_keys(body, fmt, "body")
    code = getattr(msg, "credit_code", None)
    if code is not None and check_character(code[:17]) != code[17]:  # the schema's pattern already holds
        raise ProtocolError("schema", f"{_SCHEMA_MISMATCH[1]}: credit_code {code!r} fails its check character (GB 32100): expected {check_character(code[:17])}, got {code[17]}")
    if (fmt != "json" or b"\\u0000" in body) and _holds_nul(msgspec.to_builtins(msg)):  # JSON can only escape a NUL
        raise ProtocolError("schema", f"{_SCHEMA_MISMATCH[1]}: a text value holds the character U+0000 (NUL), which no field allows")
    return msg


def _holds_nul(value: object) -> bool:
    """Whether a decoded value holds a NUL character in any string, key or value, at any depth."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_holds_nul(v) for v in value)
    return False


def _require_one_object(data: bytes, fmt: WireFormat, what: str) -> None:
    """A JSON object with nothing around it: white space before or after is refused, not skipped.

    (A MessagePack map cannot have leading bytes, sniff_format sees them, and msgspec refuses trailing ones.)
    """
    if fmt == "json" and (data[:1] != b"{" or data[-1:] != b"}"):
        raise ProtocolError("undecodable", f"{what} is not acceptable json: it must start with '{{' and end with '}}', with no white space or other bytes around the object")


def _require_unique_keys(data: bytes, fmt: WireFormat, what: str, *, envelope: bool = False) -> None:
    """Refuse an object (at any depth) with a key given twice: msgspec would silently keep the last one.

    An envelope is checked before its signature, so its check costs little whatever it holds: only its own
    keys in MessagePack (its fields are bytes), and at most ENVELOPE_MAX_OBJECTS objects in JSON.
    """
    try:
        if envelope and fmt == "msgpack":
            repeated = _msgpack_top_repeated(data)
        else:
            repeated = _json_repeated_key(data, ENVELOPE_MAX_OBJECTS if envelope else None) if fmt == "json" else _msgpack_repeated_key(data)
    except _TooMany:
        raise ProtocolError("undecodable", f"{what} is not acceptable {fmt}: an envelope holds at most {ENVELOPE_MAX_OBJECTS} objects") from None
    except RecursionError:
        raise ProtocolError("undecodable", f"{what} is not acceptable {fmt}: arrays or objects nested too deeply") from None
    except _NotStrKey:
        raise ProtocolError("undecodable", f"{what} is not acceptable {fmt}: a map key that is not a string") from None
    except ValueError as e:  # e.g. invalid UTF-8 inside an ignored field, which msgspec skips unread
        raise ProtocolError("undecodable", f"{what} is not valid {fmt}: {e}") from None
    if repeated is not None:
        raise ProtocolError("undecodable", f"{what} is not acceptable {fmt}: key {repeated!r} appears twice in one object")


class _Repeated(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _NotStrKey(Exception):
    pass


class _TooMany(Exception):
    pass


#: Objects a JSON envelope may hold (its own, and any in fields a receiver ignores): bounds the work done on
#: bytes nobody has signed yet. An honest envelope holds one.
ENVELOPE_MAX_OBJECTS = 64
_raw_maps = msgspec.msgpack.Decoder(dict[str, msgspec.Raw])


def _json_repeated_key(data: bytes, max_objects: int | None = None) -> str | None:
    """The first key repeated within one object, or None (data already decoded by msgspec: well formed)."""
    objects = 0

    def unique_pairs(pairs: list[tuple[str, object]]) -> None:
        nonlocal objects
        objects += 1
        if max_objects is not None and objects > max_objects:
            raise _TooMany
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Repeated(key)
            seen.add(key)

    try:
        json.loads(data, object_pairs_hook=unique_pairs)
    except _Repeated as e:
        return e.key
    return None


def _msgpack_top_repeated(data: bytes) -> str | None:
    """For the outermost map only: a key given twice, found by msgspec (which keeps one) against the map's count."""
    first = data[0]
    count = first & 0x0F if first <= 0x8F else int.from_bytes(data[1 : 3 if first == 0xDE else 5], "big")
    try:
        keys = _raw_maps.decode(data)
    except msgspec.ValidationError:
        raise _NotStrKey from None
    return None if len(keys) == count else "(a key of the envelope)"


#: MessagePack first bytes -> bytes that follow, for scalars of fixed size (ints, floats, fixext).
_MP_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,
             0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}  # fmt: skip
#: ... -> size of the length that follows, for str, bin and ext (ext: one more byte, its type).
_MP_STR = {0xD9: 1, 0xDA: 2, 0xDB: 4}
_MP_BLOB = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xC7: 1, 0xC8: 2, 0xC9: 4}
_MP_ARRAY = {0xDC: 2, 0xDD: 4}
_MP_MAP = {0xDE: 2, 0xDF: 4}


def _msgpack_repeated_key(data: bytes) -> str | None:
    """The first key repeated within one map, or None; walks the items without building them (no recursion).

    Only called on data msgspec decoded: it is well formed, so the walk needs no bounds checks of its own.
    """
    frames: list[list] = []  # type: ignore[type-arg]  # [items left, keys seen (None: an array), next item is a key]
    pos = 0
    while True:
        b = data[pos]
        pos += 1
        is_str = False
        count = -1  # items of a container, -1 for a scalar
        is_map = False
        if b <= 0x7F or b >= 0xE0:
            pass
        elif b <= 0x8F:
            count, is_map = b & 0x0F, True
        elif b <= 0x9F:
            count = b & 0x0F
        elif b <= 0xBF:
            start, pos, is_str = pos, pos + (b & 0x1F), True
        elif b in _MP_FIXED:
            pos += _MP_FIXED[b]
        elif b in _MP_STR:
            n = _MP_STR[b]
            start = pos + n
            pos = start + int.from_bytes(data[pos : pos + n], "big")
            is_str = True
        elif b in _MP_BLOB:
            n = _MP_BLOB[b]
            pos += n + int.from_bytes(data[pos : pos + n], "big") + (1 if b >= 0xC7 else 0)
        elif b in _MP_ARRAY or b in _MP_MAP:
            n = _MP_ARRAY.get(b) or _MP_MAP[b]
            count, is_map = int.from_bytes(data[pos : pos + n], "big"), b in _MP_MAP
            pos += n
        if frames:
            top = frames[-1]
            if top[1] is not None and top[2]:
                if not is_str:
                    raise _NotStrKey
                key = data[start:pos]
                if key in top[1]:
                    return key.decode("utf-8", "replace")
                top[1].add(key)
            top[0] -= 1
            if top[1] is not None:
                top[2] = not top[2]
        if count > 0:
            frames.append([count * 2 if is_map else count, set() if is_map else None, True])
        while frames and frames[-1][0] == 0:
            frames.pop()
        if not frames:
            return None


def decode_server_body(body: bytes, fmt: WireFormat) -> ServerMessage:
    """Decode the body of a server envelope into its message type; ProtocolError (undecodable, schema) says why not."""
    return _decode(_server_decoders[fmt], body, fmt, "body", _SCHEMA_MISMATCH)


def open_server_message(payload: bytes, server_key: VerifyKey) -> ServerMessage:
    """Verify and decode a message from the server; a bad signature raises ProtocolError."""
    fmt, env = open_envelope(payload)
    if not server_key.verify(env.body, env.sig):
        raise ProtocolError("bad_signature", "signature does not verify with the server's public key")
    return decode_server_body(env.body, fmt)
