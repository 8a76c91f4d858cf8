"""The device register: devices, their public keys, and the bundles a device is provisioned with."""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import sqlite_utils

from firmware_configs import model_files
from protocol.config import DeviceConfig, Identity, encode_device_config, load_device_config
from protocol.signing import KeyFormatError, SigningKey, VerifyKey
from protocol.topics import TopicError, device_up
from server import broker
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
    broker_dir: Path | None = None,
    ca_file: Path | None = None,
    public_key: str | None = None,
) -> list[Provisioned]:
    """Register ``count`` devices with new key pairs and write their bundles under ``out_dir``.

    Each device also gets its broker account (username = device id, a new random password) in the
    password file of ``broker_dir`` (default: beside the database), and a running broker rereads it at
    once. With ``ca_file`` (the project CA's certificate) the bundle carries it and the device uses TLS.
    With ``public_key`` (hex Ed25519, made on the device itself) one device is registered with that key and
    its bundle has no private key: the device keeps its own as ``device.key``.
    """
    broker_dir = broker_dir or broker.broker_dir_for(db_path)
    base = load_model(model)
    if device_id is not None and count != 1:
        raise RegistryError("--id names one device; leave it out with --count")
    if ca_file is not None and not ca_file.is_file():
        raise RegistryError(f"--ca: {ca_file} is not a file (the project CA's certificate, from `fe-server ca init`)")
    if public_key is not None:
        if count != 1:
            raise RegistryError("--public-key registers one device's own key; leave out --count")
        try:
            public_key = VerifyKey.from_hex(public_key.strip().lower()).public_bytes.hex()
        except (KeyFormatError, ValueError) as e:
            raise RegistryError(f"--public-key: {e}") from None
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
            if d == broker.SERVER_ACCOUNT:
                raise RegistryError(f"device id {d!r} is the server's broker account; choose another")
        out: list[Provisioned] = []
        rows = []
        creds: dict[str, str] = {}
        for d in ids:
            bundle = out_dir / d
            bundle.mkdir(parents=True, exist_ok=False)
            if public_key is None:
                key = SigningKey.generate()
                key.save(bundle / "device.key")
                public_hex = key.public_hex
            else:
                public_hex = public_key  # the private key never leaves the device
            creds[d] = broker.new_password()
            tls = {}
            if ca_file is not None:
                shutil.copyfile(ca_file, bundle / "ca.crt")
                tls = {"ca_file": "ca.crt"}
            mqtt = msgspec.structs.replace(
                base.mqtt, host=mqtt_host or base.mqtt.host, port=mqtt_port or base.mqtt.port, username=d, password=creds[d], **tls
            )
            cfg = msgspec.structs.replace(
                base,
                mqtt=mqtt,
                # Port 0: each agent picks a free local port and writes it to local_api.port beside device.toml
                # (where fe-agent submit/status read it), so any number of bundles run on one machine.
                local_api=msgspec.structs.replace(base.local_api, port=0),
                identity=Identity(device_id=d, agency_id=agency_id, private_key_file="device.key", server_public_key=server_key.public_hex),
            )
            # It holds the broker password: readable by its owner only, like device.key.
            fd = os.open(bundle / "device.toml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"# Device bundle for {d} (model file: {model}.toml)\n" + encode_device_config(cfg))
            rows.append(
                {
                    "device_id": d,
                    "model": base.model,
                    "kind": base.kind,
                    "agency_id": agency_id,
                    "public_key": public_hex,
                    "wire_format": base.delivery.wire_format,
                    "registered_ms": int(time.time() * 1000),
                    "region": region,
                }
            )
            out.append(Provisioned(d, bundle))
        broker.add_accounts(broker_dir, creds)
        try:
            with dbmod.transaction(con):
                db["devices"].insert_all(rows)
        except BaseException:
            broker.remove_accounts(broker_dir, creds)
            raise
        broker.reload(broker_dir)
        return out
    finally:
        con.close()


def revoke(db_path: Path, device_id: str, broker_dir: Path | None = None) -> bool:
    """Revoke a device's registration: running servers reject its messages from their next batch on, and
    its broker account is removed (a running broker disconnects it at once and refuses it from then on).

    Returns whether a running broker was told. Nothing to signal to the servers: every ingest reads the
    register inside each batch's transaction. Revoking again still removes a broker account left behind
    (e.g. by a crash between the two steps), then says the device was already revoked.
    """
    con = dbmod.connect(db_path)
    try:
        cur = con.execute("UPDATE devices SET revoked_ms = ? WHERE device_id = ? AND revoked_ms IS NULL", (int(time.time() * 1000), device_id))
        updated = cur.rowcount > 0
        known = updated or con.execute("SELECT 1 FROM devices WHERE device_id = ?", (device_id,)).fetchone() is not None
    finally:
        con.close()
    told = False
    if known:
        broker_dir = broker_dir or broker.broker_dir_for(db_path)
        if broker.remove_accounts(broker_dir, [device_id]):
            told = broker.reload(broker_dir)
    if not updated:
        raise RegistryError(f"device {device_id!r} is not registered or already revoked")
    return told


def active_device_ids(db_path: Path) -> set[str]:
    """Ids of registered devices that are not revoked (the broker accounts that should exist)."""
    con = dbmod.connect(db_path, readonly=True)
    try:
        return {d for (d,) in con.execute("SELECT device_id FROM devices WHERE revoked_ms IS NULL")}
    finally:
        con.close()
