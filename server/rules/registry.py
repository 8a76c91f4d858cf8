"""The device register: devices, their public keys, and the bundles a device is provisioned with."""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from firmware_configs import model_files
from protocol.config import DeviceConfig, Identity, encode_device_config, load_device_config
from protocol.signing import KeyFormatError, SigningKey, VerifyKey
from protocol.topics import TopicError, device_up
from server.broker import access as broker
from server import db as dbmod
from server.storage import device_register
from server.storage.device_register import DeviceRegistration
from server.storage.engine import Backend, Tx, backend_of, storage_for

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


def _next_ids(tx: Tx, prefix: str, count: int) -> list[str]:
    pattern = re.compile(rf"{re.escape(prefix)}-(\d+)\Z")
    used = [int(m.group(1)) for d in device_register.ids_starting(tx, prefix) if (m := pattern.match(d))]
    start = max(used, default=0) + 1
    return [f"{prefix}-{n:05d}" for n in range(start, start + count)]


def _broker_dir(db_path: str | Path, broker_dir: Path | None) -> Path:
    """The broker's folder: given, or beside a SQLite database (a PostgreSQL database has no folder to be beside)."""
    if broker_dir is not None:
        return broker_dir
    if backend_of(db_path) is Backend.POSTGRES:
        raise RegistryError("with a PostgreSQL database the broker's folder must be given: --broker-dir")
    return broker.broker_dir_for(Path(db_path))


def provision(
    db_path: str | Path,
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
    its bundle has no private key: the device keeps its own as ``device.key``. ``db_path`` is a SQLite file or a
    ``postgresql://`` URL (then ``broker_dir`` is required).
    """
    broker_dir = _broker_dir(db_path, broker_dir)
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
    with dbmod.reading(db_path) as tx:
        ids = [device_id] if device_id else _next_ids(tx, ID_PREFIX[base.kind], count)
        for d in ids:
            try:
                device_up(d)
            except TopicError as e:
                raise RegistryError(str(e)) from None
            if d == broker.SERVER_ACCOUNT:
                raise RegistryError(f"device id {d!r} is the server's broker account; choose another")
        if taken := device_register.registered(tx, ids):
            raise RegistryError(f"device {min(taken)!r} is already registered")
    out: list[Provisioned] = []
    rows: list[DeviceRegistration] = []
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
        _write_bundle(bundle, base, model, d, agency_id, server_key, creds[d], mqtt_host, mqtt_port, ca_file)
        rows.append(DeviceRegistration(d, base.model, base.kind, agency_id, public_hex, base.delivery.wire_format, int(time.time() * 1000), region))
        out.append(Provisioned(d, bundle))
    broker.add_accounts(broker_dir, creds)
    try:
        storage_for(db_path).write(lambda tx: _register(tx, rows))
    except BaseException:
        broker.remove_accounts(broker_dir, creds)
        raise
    broker.reload(broker_dir)
    return out


def _register(tx: Tx, rows: list[DeviceRegistration]) -> None:
    """Insert the devices, all or none (another ``devices add`` may have taken an id since it was chosen)."""
    added = set(device_register.add_devices(tx, rows))
    if missed := [r.device_id for r in rows if r.device_id not in added]:
        raise RegistryError(f"device {missed[0]!r} was registered meanwhile by someone else; nothing registered, run the command again")


def _write_bundle(
    bundle: Path, base: DeviceConfig, model: str, device_id: str, agency_id: str, server_key: SigningKey, password: str,
    mqtt_host: str | None, mqtt_port: int | None, ca_file: Path | None,
) -> None:
    """The device's config file (and the CA's certificate) in its bundle folder."""
    tls = {}
    if ca_file is not None:
        shutil.copyfile(ca_file, bundle / "ca.crt")
        tls = {"ca_file": "ca.crt"}
    mqtt = msgspec.structs.replace(base.mqtt, host=mqtt_host or base.mqtt.host, port=mqtt_port or base.mqtt.port, username=device_id, password=password, **tls)
    cfg = msgspec.structs.replace(
        base,
        mqtt=mqtt,
        # Port 0: each agent picks a free local port and writes it to local_api.port beside device.toml
        # (where fe-agent submit/status read it), so any number of bundles run on one machine.
        local_api=msgspec.structs.replace(base.local_api, port=0),
        identity=Identity(device_id=device_id, agency_id=agency_id, private_key_file="device.key", server_public_key=server_key.public_hex),
    )
    # It holds the broker password: readable by its owner only, like device.key.
    fd = os.open(bundle / "device.toml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"# Device bundle for {device_id} (model file: {model}.toml)\n" + encode_device_config(cfg))


def revoke(db_path: str | Path, device_id: str, broker_dir: Path | None = None) -> bool:
    """Revoke a device's registration: running servers reject its messages from their next batch on, and
    its broker account is removed (a running broker disconnects it at once and refuses it from then on).

    Returns whether a running broker was told. Nothing to signal to the servers: every ingest reads the
    register inside each batch's transaction. Revoking again still removes a broker account left behind
    (e.g. by a crash between the two steps), then says the device was already revoked.
    """
    broker_dir = _broker_dir(db_path, broker_dir)

    def revoke_row(tx: Tx) -> tuple[bool, bool]:
        updated = device_register.revoke(tx, device_id, int(time.time() * 1000))
        return updated, updated or bool(device_register.registered(tx, [device_id]))

    updated, known = storage_for(db_path).write(revoke_row)
    told = False
    if known:
        if broker.remove_accounts(broker_dir, [device_id]):
            told = broker.reload(broker_dir)
    if not updated:
        raise RegistryError(f"device {device_id!r} is not registered or already revoked")
    return told


def active_device_ids(db_path: str | Path) -> set[str]:
    """Ids of registered devices that are not revoked (the broker accounts that should exist)."""
    with dbmod.reading(db_path) as tx:
        return device_register.active_device_ids(tx)
