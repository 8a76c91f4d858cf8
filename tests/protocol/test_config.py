"""Device config files: every model file loads, and every mistake is named precisely."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import msgspec
import pytest

import firmware_configs
import protocol
from protocol.config import (
    ConfigError,
    DeviceConfig,
    Identity,
    decode_device_config,
    encode_device_config,
    load_device_config,
)

MODEL_FILES = firmware_configs.model_files()
MINIMAL = 'model = "T-1"\nkind = "phone"\n'
GOOD_PUBLIC_KEY = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"


def _write(tmp_path: Path, text: str, name: str = "device.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _fails(tmp_path: Path, text: str) -> tuple[Path, str]:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_device_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: "), message
    return path, message


def _phone_with(old: str, new: str) -> str:
    text = MODEL_FILES["phone"].read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


# --------------------------------------------------------------------------- the shipped model files


def test_there_are_model_files() -> None:
    assert {"body_recorder", "phone", "qr_terminal"} <= MODEL_FILES.keys()
    assert all(p.suffix == ".toml" and p.is_file() for p in MODEL_FILES.values())


@pytest.mark.parametrize("name", sorted(MODEL_FILES))
def test_model_file_loads(name: str) -> None:
    config = load_device_config(MODEL_FILES[name])
    assert isinstance(config, DeviceConfig)
    assert config.identity is None, "a model file has no [identity]; device bundles add it"
    assert config.outbox.low_priority_max_bytes <= config.outbox.max_bytes
    assert config.mqtt.reconnect_min_s <= config.mqtt.reconnect_max_s


@pytest.mark.parametrize("name", sorted(MODEL_FILES))
def test_model_file_sets_every_table_explicitly(name: str) -> None:
    """Model files spell out their settings rather than leaning on code defaults (a device maker reads them)."""
    raw = tomllib.loads(MODEL_FILES[name].read_text(encoding="utf-8"))
    for table in ("mqtt", "outbox", "delivery", "status", "local_api", "clock"):
        assert table in raw, f"{name}: no [{table}] table"


def test_capabilities_match_the_device_kinds() -> None:
    configs = {name: load_device_config(p) for name, p in MODEL_FILES.items()}
    assert configs["body_recorder"].can_record and not configs["body_recorder"].can_scan
    assert configs["qr_terminal"].can_scan and not configs["qr_terminal"].can_record
    assert configs["phone"].can_scan and configs["phone"].can_record


# --------------------------------------------------------------------------- errors name file, key and expectation


def test_mistyped_key_names_file_key_and_suggestion(tmp_path: Path) -> None:
    _, message = _fails(tmp_path, _phone_with("keepalive_s = 60", "kepalive_s = 60"))
    assert "'mqtt.kepalive_s'" in message
    assert "unknown key" in message
    assert "did you mean 'mqtt.keepalive_s'?" in message
    assert "keepalive_s" in message.split("did you mean", 1)[1]


def test_mistyped_top_level_key_and_table(tmp_path: Path) -> None:
    _, message = _fails(tmp_path, _phone_with("can_scan", "can_sacn"))
    assert "'can_sacn'" in message and "did you mean 'can_scan'?" in message
    _, message = _fails(tmp_path, _phone_with("[delivery]", "[delivry]"))
    assert "'delivry'" in message and "did you mean 'delivery'?" in message


def test_unknown_key_without_a_close_match_lists_the_allowed_keys(tmp_path: Path) -> None:
    _, message = _fails(tmp_path, MINIMAL + "[clock]\nstratum = 2\n")
    assert "'clock.stratum'" in message and "did you mean" not in message
    assert "expected one of: error_ms, source" in message


@pytest.mark.parametrize(
    ("old", "new", "key", "bound"),
    [
        ("keepalive_s = 60", "keepalive_s = 2", "mqtt.keepalive_s", ">= 5"),
        ("keepalive_s = 60", "keepalive_s = 7200", "mqtt.keepalive_s", "<= 3600"),
        ("port = 1883", "port = 70000", "mqtt.port", "<= 65535"),
        ("port = 1883", "port = 0", "mqtt.port", ">= 1"),
        ("mqtt_inflight = 20", "mqtt_inflight = 0", "delivery.mqtt_inflight", ">= 1"),
        ("heartbeat_s = 300.0", "heartbeat_s = 0.0", "status.heartbeat_s", "> 0"),
        ("max_bytes = 67108864", "max_bytes = 1024", "outbox.max_bytes", ">= 65536"),
        ("error_ms = 200", "error_ms = -1", "clock.error_ms", ">= 0"),
    ],
)
def test_out_of_range_value_names_key_and_bound(tmp_path: Path, old: str, new: str, key: str, bound: str) -> None:
    _, message = _fails(tmp_path, _phone_with(old, new))
    assert f"'{key}'" in message
    assert bound in message


def test_cross_field_limit_names_both_keys(tmp_path: Path) -> None:
    _, message = _fails(tmp_path, _phone_with("low_priority_max_bytes = 50331648", "low_priority_max_bytes = 67108865"))
    assert "'outbox.low_priority_max_bytes'" in message and "outbox.max_bytes" in message and "67108865" in message
    _, message = _fails(tmp_path, MINIMAL + "[mqtt]\nreconnect_min_s = 90.0\nreconnect_max_s = 60.0\n")
    assert "'mqtt.reconnect_min_s'" in message and "mqtt.reconnect_max_s" in message


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        ("keepalive_s = 60", 'keepalive_s = "60"', "mqtt.keepalive_s", "expected int, got str"),
        ("keepalive_s = 60", "keepalive_s = 60.5", "mqtt.keepalive_s", "expected int, got float"),
        ("can_scan = true", 'can_scan = "yes"', "can_scan", "expected bool, got str"),
        ('host = "127.0.0.1"', "host = 127", "mqtt.host", "expected str, got int"),
        ('extensions = [".jpg", ".mp4", ".m4a"]', 'extensions = [".jpg", 4]', "media.extensions", "expected str, got int"),
    ],
)
def test_wrong_type_names_key_and_types(tmp_path: Path, old: str, new: str, key: str, expected: str) -> None:
    _, message = _fails(tmp_path, _phone_with(old, new))
    assert f"'{key}" in message
    assert expected in message


def test_value_where_a_table_belongs(tmp_path: Path) -> None:
    _, message = _fails(tmp_path, MINIMAL + "status = 5\n")
    assert "'status'" in message and "expected object, got int" in message


@pytest.mark.parametrize(
    ("old", "new", "key", "allowed"),
    [
        ('wire_format = "json"', 'wire_format = "cbor"', "delivery.wire_format", ["'json'", "'msgpack'"]),
        ('kind = "phone"', 'kind = "tablet"', "kind", ["'body_recorder'", "'qr_terminal'", "'phone'"]),
        ('source = "ntp"', 'source = "sundial"', "clock.source", ["'gnss'", "'ntp'", "'server'", "'rtc'", "'unsynced'"]),
    ],
)
def test_unknown_enum_value_lists_allowed_values(tmp_path: Path, old: str, new: str, key: str, allowed: list[str]) -> None:
    _, message = _fails(tmp_path, _phone_with(old, new))
    assert f"'{key}'" in message
    assert all(a in message for a in allowed), message
    assert new.split("=")[1].strip().strip('"') in message


@pytest.mark.parametrize("key", ["model", "kind"])
def test_missing_required_key(tmp_path: Path, key: str) -> None:
    text = "\n".join(line for line in MINIMAL.splitlines() if not line.startswith(key)) + "\n"
    _, message = _fails(tmp_path, text)
    assert f"'{key}'" in message and "required key is missing" in message


def test_missing_required_key_in_identity(tmp_path: Path) -> None:
    _, message = _fails(tmp_path, MINIMAL + '[identity]\ndevice_id = "qt310-310115-0042"\nagency_id = "11310115MB2C194781"\n')
    assert "'identity.server_public_key'" in message and "required key is missing" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("device_id", "qt310/0042"),
        ("device_id", "qt310-0042\n"),
        ("server_public_key", GOOD_PUBLIC_KEY.upper()),
        ("server_public_key", GOOD_PUBLIC_KEY + "\n"),
        ("server_public_key", GOOD_PUBLIC_KEY[:-2]),
    ],
)
def test_bad_identity_value(tmp_path: Path, field: str, value: str) -> None:
    identity = {"device_id": "qt310-310115-0042", "agency_id": "11310115MB2C194781", "server_public_key": GOOD_PUBLIC_KEY, field: value}
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in identity.items())
    _, message = _fails(tmp_path, MINIMAL + "[identity]\n" + lines)
    assert f"'identity.{field}'" in message


@pytest.mark.parametrize(
    "text",
    [
        MINIMAL + "[mqtt\nport = 1\n",
        MINIMAL + "port = \n",
        MINIMAL + 'model = "twice"\n',
        MINIMAL + "[mqtt]\n[mqtt]\n",
        "model = 'unterminated\n",
    ],
)
def test_invalid_toml_names_the_file(tmp_path: Path, text: str) -> None:
    _, message = _fails(tmp_path, text)
    assert "not valid TOML" in message


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=r"absent\.toml: cannot read"):
        load_device_config(missing)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'model = "caf\xe9"\nkind = "phone"\n')
    with pytest.raises(ConfigError, match=r"latin1\.toml: not UTF-8"):
        load_device_config(latin1)


def test_decode_names_the_given_source() -> None:
    with pytest.raises(ConfigError, match=r"^bundle:device\.toml: key 'kind'"):
        decode_device_config('model = "x"\nkind = "pager"\n', "bundle:device.toml")


def test_minimal_file_takes_the_defaults() -> None:
    config = decode_device_config(MINIMAL, "minimal")
    assert config == DeviceConfig(model="T-1", kind="phone")
    assert config.delivery.mqtt_inflight == 20 and config.mqtt.keepalive_s == 30


def test_integer_is_accepted_for_a_float_setting() -> None:
    config = decode_device_config(MINIMAL + "[status]\nheartbeat_s = 90\n", "x")
    assert config.status.heartbeat_s == 90.0


# --------------------------------------------------------------------------- writing bundles


@pytest.mark.parametrize("name", sorted(MODEL_FILES))
def test_encode_round_trip_of_model_files(name: str) -> None:
    config = load_device_config(MODEL_FILES[name])
    text = encode_device_config(config)
    tomllib.loads(text)  # plain TOML any reader accepts
    assert decode_device_config(text, "encoded") == config
    assert encode_device_config(decode_device_config(text, "encoded")) == text


def test_encode_round_trip_with_identity_and_awkward_text(tmp_path: Path) -> None:
    base = load_device_config(MODEL_FILES["body_recorder"])
    config = msgspec.structs.replace(
        base,
        description='执法记录仪 "ZFY" \\ back\\slash\ttab\nnewline \x7f del \x00 nul é',
        identity=Identity(device_id="zfy-br200-310115-0317", agency_id="11310115MB2C194781", server_public_key=GOOD_PUBLIC_KEY),
        media=msgspec.structs.replace(base.media, watch_dir="C:\\DCIM\\100MEDIA", extensions=[]),
    )
    text = encode_device_config(config)
    assert "[identity]" in text
    path = _write(tmp_path, text, "bundle.toml")
    assert load_device_config(path) == config


def test_encoded_bundle_has_no_identity_table_when_there_is_none() -> None:
    text = encode_device_config(DeviceConfig(model="T-1", kind="phone"))
    assert "[identity]" not in text and "null" not in text and "None" not in text


def test_config_update_example_names_real_settings() -> None:
    """The dotted keys of a ConfigUpdate address DeviceConfig fields, and the values fit them."""
    example = json.loads((Path(protocol.__file__).resolve().parent / "examples" / "config_update.v1.json").read_text(encoding="utf-8"))
    config = msgspec.to_builtins(load_device_config(MODEL_FILES["body_recorder"]))
    for dotted, value in example["settings"].items():
        *tables, key = dotted.split(".")
        target = config
        for table in tables:
            target = target[table]
        assert key in target, f"{dotted} is not a config key"
        target[key] = value
    updated = msgspec.convert(config, DeviceConfig)
    assert updated.delivery.resend_after_s == example["settings"]["delivery.resend_after_s"]
