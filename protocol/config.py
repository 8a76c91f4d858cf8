"""Device configuration: one TOML file per device model in ``firmware_configs/``, decoded strictly.

A device's own file (in its bundle) is its model's file plus an ``[identity]`` table. Unknown or
mistyped keys and out-of-range values fail with the file, the key and what was expected.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import tomli_w
from msgspec import Meta, Struct

from protocol.messages import ClockSource, DeviceId

Port = Annotated[int, Meta(ge=1, le=65535)]
Seconds = Annotated[float, Meta(gt=0, le=86400)]


class _Strict(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class MqttSettings(_Strict, kw_only=True):
    """How the device reaches the broker."""

    host: str = "127.0.0.1"
    port: Port = 1883
    keepalive_s: Annotated[int, Meta(ge=5, le=3600)] = 30
    reconnect_min_s: Seconds = 1.0
    reconnect_max_s: Seconds = 60.0
    # The device's broker account (username = device id; the broker also makes it the client id). Empty
    # only in a model file; a bundle written by `fe-server devices add` always has both.
    username: Annotated[str, Meta(max_length=64)] = ""
    password: Annotated[str, Meta(max_length=256)] = ""
    # TLS: the project CA's certificate the device verifies the broker with (empty: plain TCP). Paths are
    # relative to the config file's folder.
    ca_file: str = ""
    # Optional client certificate (common name = device id) and its key, for a broker that requires one.
    cert_file: str = ""
    key_file: str = ""


class OutboxSettings(_Strict, kw_only=True):
    """The durable local buffer."""

    path: str = "outbox.db"
    # Hard limit on stored bytes: past it even inspection events are refused (never is an unreceipted event deleted).
    max_bytes: Annotated[int, Meta(ge=64 * 1024)] = 256 * 1024 * 1024
    # Past this, low-priority items (status, media metadata) are refused, keeping room for inspection events.
    low_priority_max_bytes: Annotated[int, Meta(ge=32 * 1024)] = 192 * 1024 * 1024
    # Caps the SQLite file in pages (0 = no cap); emulates a small storage partition.
    sqlite_max_page_count: Annotated[int, Meta(ge=0)] = 0


class DeliverySettings(_Strict, kw_only=True):
    """Publishing and resending."""

    # Messages paho may have unacknowledged by the broker (paho loses messages past 65,535, and is slower above ~20).
    mqtt_inflight: Annotated[int, Meta(ge=1, le=1000)] = 20
    # Events published but not yet receipted by the server; bounds memory and duplicate traffic.
    receipt_window: Annotated[int, Meta(ge=1, le=20000)] = 500
    resend_after_s: Seconds = 15.0
    resend_max_backoff_s: Seconds = 300.0
    wire_format: Literal["json", "msgpack"] = "json"


class StatusSettings(_Strict, kw_only=True):
    """Heartbeats."""

    heartbeat_s: Seconds = 60.0


class LocalApiSettings(_Strict, kw_only=True):
    """The device's own software submits events here (HTTP on loopback)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8470  # 0 = pick a free port and write it to <outbox>.port


class ClockSettings(_Strict, kw_only=True):
    """How far the device clock can be trusted."""

    source: ClockSource = "ntp"
    error_ms: Annotated[int, Meta(ge=0)] = 1000


class MediaSettings(_Strict, kw_only=True):
    """Where the recorder writes its files."""

    watch_dir: str = ""  # empty: this device records nothing; relative paths are from the config's folder
    extensions: list[str] = []
    poll_s: Annotated[float, Meta(gt=0, le=3600)] = 5.0
    # A file is finished when its size and modification time stay the same over this many polls.
    settle_polls: Annotated[int, Meta(ge=1, le=100)] = 2
    # Every file already sent is hashed again this often, to catch changes that keep size and time.
    rehash_s: Annotated[float, Meta(gt=0)] = 3600.0


class Identity(_Strict, kw_only=True):
    """Who this particular device is; present in a device bundle, absent from a model file."""

    device_id: DeviceId
    agency_id: str
    private_key_file: str = "device.key"
    server_public_key: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$(?!\n)")]  # see messages._END


class DeviceConfig(_Strict, kw_only=True):
    """Everything a device needs to run the edge agent."""

    model: Annotated[str, Meta(min_length=1, max_length=64)]
    kind: Literal["body_recorder", "qr_terminal", "phone"]
    description: str = ""
    config_version: Annotated[int, Meta(ge=0)] = 1
    can_scan: bool = False
    can_record: bool = False
    mqtt: MqttSettings = MqttSettings()
    outbox: OutboxSettings = OutboxSettings()
    delivery: DeliverySettings = DeliverySettings()
    status: StatusSettings = StatusSettings()
    local_api: LocalApiSettings = LocalApiSettings()
    clock: ClockSettings = ClockSettings()
    media: MediaSettings = MediaSettings()
    identity: Identity | None = None

    def __post_init__(self) -> None:
        if self.outbox.low_priority_max_bytes > self.outbox.max_bytes:
            raise ValueError(
                f"key 'outbox.low_priority_max_bytes': expected at most outbox.max_bytes ({self.outbox.max_bytes}), "
                f"got {self.outbox.low_priority_max_bytes}"
            )
        if self.mqtt.reconnect_min_s > self.mqtt.reconnect_max_s:
            raise ValueError(
                f"key 'mqtt.reconnect_min_s': expected at most mqtt.reconnect_max_s ({self.mqtt.reconnect_max_s}), "
                f"got {self.mqtt.reconnect_min_s}"
            )
        if bool(self.mqtt.cert_file) != bool(self.mqtt.key_file):
            raise ValueError("key 'mqtt.key_file': expected mqtt.cert_file and mqtt.key_file together (a client certificate and its key), or neither")
        if self.mqtt.cert_file and not self.mqtt.ca_file:
            raise ValueError("key 'mqtt.ca_file': a client certificate (mqtt.cert_file) needs TLS: give the CA certificate too")
        if self.mqtt.password and not self.mqtt.username:
            raise ValueError("key 'mqtt.username': expected a username with mqtt.password")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+)$")


def _field_type(path: list[str], root: type[Struct]) -> object:
    """The declared type at a dotted path in ``root`` (Struct for tables), or None."""
    typ: object = root
    for part in path:
        if part.isdigit():  # an index into an array of tables: step into the element type
            typ = next(iter(getattr(typ, "__args__", ())), None)
            continue
        structs = [c for c in getattr(typ, "__args__", (typ,)) if isinstance(c, type) and issubclass(c, Struct)]
        if not structs:
            return None
        field = next((f for f in msgspec.structs.fields(structs[0]) if f.name == part), None)
        if field is None:
            return None
        typ = field.type
    return typ


def _struct_at(path: list[str], root: type[Struct]) -> type[Struct] | None:
    typ = _field_type(path, root)
    candidates = getattr(typ, "__args__", (typ,))
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, Struct)), None)


def explain(error: Exception, root: type[Struct] = DeviceConfig) -> str:
    """Turn a msgspec error while decoding ``root`` into "key 'a.b': what was expected"."""
    m = _AT.match(str(error))
    assert m is not None
    path = [p for p in re.split(r"[.\[\]]+", (m.group("path") or "").strip(".")) if p]
    what = m.group("what")
    unknown = _UNKNOWN.match(what)
    if unknown:
        field = unknown.group("field")
        cls = _struct_at(path, root)
        allowed = sorted(f.name for f in msgspec.structs.fields(cls)) if cls else []
        hint = difflib.get_close_matches(field, allowed, n=1)
        key = ".".join([*path, field])
        msg = f"key '{key}': unknown key"
        if hint:
            msg += f" (did you mean '{'.'.join([*path, hint[0]])}'?)"
        if allowed:
            msg += f"; expected one of: {', '.join(allowed)}"
        return msg
    missing = _MISSING.match(what)
    if missing:
        return f"key '{'.'.join([*path, missing.group('field')])}': required key is missing"
    if what.startswith("key '"):  # raised by a __post_init__ check, which already names its key
        return what
    key = ".".join(path) or "(top level)"
    enum = _ENUM.match(what)
    if enum:
        allowed = getattr(_field_type(path, root), "__args__", ())
        return f"key '{key}': expected one of {', '.join(repr(a) for a in allowed)}, got {enum.group('value')}"
    what = what[0].lower() + what[1:] if what else what
    return f"key '{key}': {what.replace('`', '')}"


T = TypeVar("T", bound=Struct)


def decode_toml(text: str, source: str, typ: type[T]) -> T:
    """Decode TOML text strictly into ``typ``; errors name ``source`` and the key."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    try:
        return msgspec.toml.decode(text.encode(), type=typ)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {explain(e, typ)}") from None


def load_toml(path: str | Path, typ: type[T]) -> T:
    """Read and strictly decode a TOML file into ``typ``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    return decode_toml(text, str(p), typ)


def decode_device_config(text: str, source: str) -> DeviceConfig:
    """Decode a device config's TOML text strictly."""
    return decode_toml(text, source, DeviceConfig)


def load_device_config(path: str | Path) -> DeviceConfig:
    """Read and strictly decode a device config file."""
    return load_toml(path, DeviceConfig)


def encode_device_config(config: DeviceConfig) -> str:
    """TOML text for a config (used to write device bundles); ``decode_device_config`` reads it back equal.

    TOML has no null: a ``None`` value is written by leaving its key out (it must be the field's default).
    """
    return tomli_w.dumps(_without_none(msgspec.to_builtins(config)))


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value
