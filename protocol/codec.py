"""Encoding, sealing and opening of envelopes, in JSON (default) or MessagePack.

A published payload is an ``Envelope`` ``{"body": <bytes>, "sig": <bytes>}`` in the sender's wire
format (in JSON, bytes are standard base64). ``body`` is the message encoded in the same format.
The format is recognised from the first byte: a JSON envelope starts with ``{`` (0x7B); a MessagePack
envelope is a map (0x80-0x8F or 0xDE/0xDF). The server answers a device in the format it used.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import msgspec

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
    fmt = sniff_format(payload)
    return fmt, _decode(_envelope_decoders[fmt], payload, fmt, "payload", ("bad_envelope", "not an envelope"))


def decode_device_body(body: bytes, fmt: WireFormat) -> DeviceMessage:
    """Decode the body of a device envelope into its message type; ProtocolError (undecodable, schema) says why not."""
    return _decode(_device_decoders[fmt], body, fmt, "body", _SCHEMA_MISMATCH)


def decode_server_body(body: bytes, fmt: WireFormat) -> ServerMessage:
    """Decode the body of a server envelope into its message type; ProtocolError (undecodable, schema) says why not."""
    return _decode(_server_decoders[fmt], body, fmt, "body", _SCHEMA_MISMATCH)


def open_server_message(payload: bytes, server_key: VerifyKey) -> ServerMessage:
    """Verify and decode a message from the server; a bad signature raises ProtocolError."""
    fmt, env = open_envelope(payload)
    if not server_key.verify(env.body, env.sig):
        raise ProtocolError("bad_signature", "signature does not verify with the server's public key")
    return decode_server_body(env.body, fmt)
