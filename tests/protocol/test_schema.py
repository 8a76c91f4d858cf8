"""`python -m protocol schema`: the JSON Schema a device maker validates against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

import protocol
from protocol.messages import DEVICE_MESSAGE_TYPES, DEVICE_REQUEST_TYPES, SERVER_MESSAGE_TYPES, type_tag

REPO_ROOT = Path(protocol.__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "protocol" / "examples"
DEVICE_TAGS = {type_tag(cls): cls for cls in DEVICE_MESSAGE_TYPES}
SERVER_TAGS = {type_tag(cls): cls for cls in SERVER_MESSAGE_TYPES}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "protocol", "schema"],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stderr == b""
    return json.loads(done.stdout.decode("utf-8"))


def test_is_a_json_schema_document(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert isinstance(schema["$defs"], dict)
    assert len(schema["oneOf"]) == 3  # envelope, device message, server message


def test_defines_every_message_and_nested_type(schema: dict[str, Any]) -> None:
    defs = schema["$defs"]
    expected = {cls.__name__ for cls in (*DEVICE_MESSAGE_TYPES, *SERVER_MESSAGE_TYPES, *DEVICE_REQUEST_TYPES)}
    expected |= {"Envelope", "GeoPoint", "ExceptionBasis", "ReceiptItem", "RejectionItem", "DeviceMessage", "ServerMessage", "DeviceConfigFile"}
    expected |= {"DecisionWarning", "Credential", "InspectionRef", "NoDisturbEntry", "SnapshotPolicy"}
    assert expected <= defs.keys(), sorted(expected - defs.keys())


@pytest.mark.parametrize(("union", "tags"), [("DeviceMessage", DEVICE_TAGS), ("ServerMessage", SERVER_TAGS)])
def test_unions_are_discriminated_by_type(schema: dict[str, Any], union: str, tags: dict[str, type]) -> None:
    node = schema["$defs"][union]
    assert node["discriminator"]["propertyName"] == "type"
    mapping = node["discriminator"]["mapping"]
    assert mapping == {tag: f"#/$defs/{cls.__name__}" for tag, cls in tags.items()}
    assert {ref["$ref"] for ref in node["anyOf"]} == set(mapping.values())


@pytest.mark.parametrize("cls", [*DEVICE_MESSAGE_TYPES, *SERVER_MESSAGE_TYPES, *DEVICE_REQUEST_TYPES], ids=type_tag)
def test_message_definition_matches_the_struct(schema: dict[str, Any], cls: type) -> None:
    node = schema["$defs"][cls.__name__]
    assert node["type"] == "object"
    assert node["properties"]["type"] == {"enum": [type_tag(cls)]}
    fields = msgspec.structs.fields(cls)
    assert set(node["properties"]) == {"type"} | {f.encode_name for f in fields}
    required = {"type"} | {f.encode_name for f in fields if f.required}
    assert set(node["required"]) == required


def test_envelope_definition(schema: dict[str, Any]) -> None:
    env = schema["$defs"]["Envelope"]
    assert set(env["required"]) == {"body", "sig"}
    assert env["properties"]["body"]["contentEncoding"] == "base64"
    assert env["properties"]["sig"]["minLength"] == env["properties"]["sig"]["maxLength"] == 88  # 64 bytes in base64


def test_example_bodies_validate_against_the_schema(schema: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    defs = schema["$defs"]
    checked = 0
    for path in sorted(EXAMPLES_DIR.glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        union = "TimeRequest" if body["type"] == "time_request" else "DeviceMessage" if body["type"] in DEVICE_TAGS else "ServerMessage"
        validator = jsonschema.Draft202012Validator({"$ref": f"#/$defs/{union}", "$defs": defs})
        validator.validate(body)
        assert not validator.is_valid({**body, "device_id": "a/b"})
        checked += 1
    assert checked >= len(DEVICE_TAGS) + len(SERVER_TAGS)
