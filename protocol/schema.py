"""JSON Schema of every message, for device makers and validators."""

from __future__ import annotations

from typing import Any

import msgspec

from protocol.config import DeviceConfig
from protocol.messages import DeviceMessage, Envelope, ServerMessage, TimeRequest


def json_schemas() -> dict[str, Any]:
    """One JSON Schema document (2020-12) covering the envelope, both message unions, the time request and the device config."""
    (envelope, device, server, _time_request, config), components = msgspec.json.schema_components(
        [Envelope, DeviceMessage, ServerMessage, TimeRequest, DeviceConfig], ref_template="#/$defs/{name}"
    )  # the time request (published on its own topic, not an event) is in $defs as TimeRequest
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Field-enforcement wire protocol",
        "description": "Envelope: body is the message's encoded bytes (base64 in JSON), sig the Ed25519 signature of them.",
        "oneOf": [envelope, device, server],
        "$defs": {
            **components,
            "DeviceMessage": device,
            "ServerMessage": server,
            "DeviceConfigFile": config,
        },
    }
