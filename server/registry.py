"""The device register: devices, their public keys, and the bundles a device is provisioned with."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import sqlite_utils

from firmware_configs import model_files
from protocol.config import DeviceConfig, Identity, encode_device_config, load_device_config
from protocol.signing import SigningKey
from protocol.topics import TopicError, device_up
from server import db as dbmod

#: Prefix of generated device ids, per device kind.
ID_PREFIX = {"body_recorder": "BR", "qr_terminal": "QT", "phone": "PH"}


class RegistryError(ValueError):
    """A registration that cannot be made, with the reason."""


@dataclass(frozen=True, slots=True)
class Provisioned:
    """A registered device and where its bundle was written."""

    device_id: str
    bundle_dir: Path


def load_model(model: str) -> DeviceConfig:
    """A model's config from firmware_configs (by file stem, e.g. 'body_recorder')."""
    files = model_files()
    if model not in files:
        raise RegistryError(f"unknown device model {model!r}; expected one of: {', '.join(files)}")
    return load_device_config(files[model])


def _next_ids(db: sqlite_utils.Database, prefix: str, count: int) -> list[str]:
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)$")
    used = [int(m.group(1)) for (d,) in db.execute("SELECT device_id FROM devices ORDER BY device_id") if (m := pattern.match(d))]
    start = max(used, default=0) + 1
    return [f"{prefix}-{n:05d}" for n in range(start, start + count)]


def provision(
    db_path: Path,
    server_key: SigningKey,
    *,
    model: str,
    agency_id: str,
    out_dir: Path,
    device_id: str | None = None,
    count: int = 1,
    mqtt_host: str | None = None,
    mqtt_port: int | None = None,
    region: str = "",
) -> list[Provisioned]:
    """Register ``count`` devices with new key pairs and write their bundles under ``out_dir``."""
    base = load_model(model)
    if device_id is not None and count != 1:
        raise RegistryError("--id names one device; leave it out with --count")
    dbmod.migrate(db_path)
    con = dbmod.connect(db_path)
    try:
        db = sqlite_utils.Database(con)
        ids = [device_id] if device_id else _next_ids(db, ID_PREFIX[base.kind], count)
        for d in ids:
            try:
                device_up(d)
            except TopicError as e:
                raise RegistryError(str(e)) from None
            if db["devices"].count_where("device_id = ?", [d]):
                raise RegistryError(f"device {d!r} is already registered")
        out: list[Provisioned] = []
        rows = []
        for d in ids:
            key = SigningKey.generate()
            bundle = out_dir / d
            bundle.mkdir(parents=True, exist_ok=False)
            key.save(bundle / "device.key")
            mqtt = msgspec.structs.replace(base.mqtt, host=mqtt_host or base.mqtt.host, port=mqtt_port or base.mqtt.port)
            cfg = msgspec.structs.replace(
                base,
                mqtt=mqtt,
                # Several agents may share one machine (simulation): let each pick a free local port.
                local_api=msgspec.structs.replace(base.local_api, port=0) if count > 1 else base.local_api,
                identity=Identity(device_id=d, agency_id=agency_id, private_key_file="device.key", server_public_key=server_key.public_hex),
            )
            (bundle / "device.toml").write_text(f"# Device bundle for {d} (model file: {model}.toml)\n" + encode_device_config(cfg))
            rows.append(
                {
                    "device_id": d,
                    "model": base.model,
                    "kind": base.kind,
                    "agency_id": agency_id,
                    "public_key": key.public_hex,
                    "wire_format": base.delivery.wire_format,
                    "registered_ms": int(time.time() * 1000),
                    "region": region,
                }
            )
            out.append(Provisioned(d, bundle))
        with dbmod.transaction(con):
            db["devices"].insert_all(rows)
        return out
    finally:
        con.close()


def revoke(db_path: Path, device_id: str) -> None:
    """Revoke a device's registration: running servers reject its messages from their next batch on.

    Nothing else to signal: every ingest reads the register inside each batch's transaction.
    """
    con = dbmod.connect(db_path)
    try:
        cur = con.execute("UPDATE devices SET revoked_ms = ? WHERE device_id = ? AND revoked_ms IS NULL", (int(time.time() * 1000), device_id))
        if cur.rowcount == 0:
            raise RegistryError(f"device {device_id!r} is not registered or already revoked")
    finally:
        con.close()
