"""JSON Schema of every message, for device makers and validators."""

from __future__ import annotations

from typing import Any

import msgspec

from protocol.config import DeviceConfig
from protocol.messages import DeviceMessage, Envelope, ServerMessage


def json_schemas() -> dict[str, Any]:
    """One JSON Schema document (2020-12) covering the envelope, both message unions and the device config."""
    (envelope, device, server, config), components = msgspec.json.schema_components(
        [Envelope, DeviceMessage, ServerMessage, DeviceConfig], ref_template="#/$defs/{name}"
    )
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
