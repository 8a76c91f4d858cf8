"""The time exchange (protocol/README.md §8.1): a device asks, the server answers at once, NTP-style.

A device sets its clock offset only from the answer to its own latest request (same nonce) whose round
trip was short. Server time in any other message (a receipt that waited days in the broker session) is
never used for that.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from protocol.codec import ProtocolError, WireFormat, _decode
from protocol.messages import TimeRequest, TimeResponse

#: A round trip longer than this is not used: the answer may have waited somewhere (broker, queue).
MAX_ROUND_TRIP_MS = 5_000
#: MQTT v5 Message Expiry Interval of requests and answers: the broker drops them if they wait longer.
MESSAGE_EXPIRY_S = 10

_request_decoders = {"json": msgspec.json.Decoder(TimeRequest), "msgpack": msgspec.msgpack.Decoder(TimeRequest)}


def decode_time_request(body: bytes, fmt: WireFormat) -> TimeRequest:
    """Decode the body of a time request; ProtocolError (undecodable, schema) says why not."""
    return _decode(_request_decoders[fmt], body, fmt, "body", ("schema", "body is not a time request"))


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """What one exchange says: server time minus device time, and how far that can be off."""

    offset_ms: int
    error_ms: int  # half the round trip spent outside the server: the true offset is offset_ms ± error_ms
    round_trip_ms: int


def estimate(answer: TimeResponse, t1_ms: int, t4_ms: int) -> ClockEstimate:
    """NTP's formula: t1 request sent (device), t2 received (server), t3 answer sent (server), t4 answer received (device).

    ValueError if the answer cannot belong to a request sent at t1, or its round trip is too long to use.
    """
    t2, t3 = answer.received_ms, answer.server_time_ms
    if answer.request_device_time_ms != t1_ms:
        raise ValueError(f"the answer echoes a request sent at {answer.request_device_time_ms}, not at {t1_ms}")
    round_trip = t4_ms - t1_ms
    if round_trip < 0 or t3 < t2:
        raise ValueError("the answer's times are not in order")
    if round_trip > MAX_ROUND_TRIP_MS:
        raise ValueError(f"round trip of {round_trip} ms is longer than {MAX_ROUND_TRIP_MS} ms: the answer may have waited")
    network = round_trip - (t3 - t2)
    offset = ((t2 - t1_ms) + (t3 - t4_ms)) / 2
    return ClockEstimate(offset_ms=round(offset), error_ms=max(0, network) // 2 + 1, round_trip_ms=round_trip)


__all__ = ["MAX_ROUND_TRIP_MS", "MESSAGE_EXPIRY_S", "ClockEstimate", "ProtocolError", "decode_time_request", "estimate"]
