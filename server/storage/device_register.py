"""The device register's rows (the devices table as server/rules/registry.py keeps it): registering, revoking, listing.

The ingest's own reads of the register (keys, revocations inside each batch) belong to storage/devices.py.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass

from server.storage.engine import Tx, sql


@dataclass(frozen=True, slots=True)
class DeviceRegistration:
    """One device as registered by ``fe-server devices add``."""

    device_id: str
    model: str
    kind: str
    agency_id: str
    public_key: str
    wire_format: str
    registered_ms: int
    region: str


# Filtered again by the caller: LIKE's case rules differ between the backends, and '_' would match any character.
IDS_LIKE = sql("SELECT device_id FROM devices WHERE device_id LIKE :pattern ORDER BY device_id")
REGISTERED = sql("SELECT device_id FROM devices WHERE device_id IN (:ids) ORDER BY device_id")
ADD = sql(
    "INSERT INTO devices (device_id, model, kind, agency_id, public_key, wire_format, registered_ms, region)"
    " VALUES (:device_id, :model, :kind, :agency_id, :public_key, :wire_format, :registered_ms, :region)"
    " ON CONFLICT (device_id) DO NOTHING RETURNING device_id"
)
REVOKE = sql("UPDATE devices SET revoked_ms = :now_ms WHERE device_id = :device_id AND revoked_ms IS NULL")
ACTIVE = sql("SELECT device_id, agency_id, kind FROM devices WHERE revoked_ms IS NULL ORDER BY device_id")


def ids_starting(tx: Tx, prefix: str) -> list[str]:
    """Device ids that may start with ``prefix`` (a superset: check each), in order."""
    return [d for (d,) in tx.all(IDS_LIKE, pattern=f"{prefix}%")]


def registered(tx: Tx, device_ids: Collection[str]) -> set[str]:
    """Which of these device ids are registered (revoked or not)."""
    return {d for (d,) in tx.all(REGISTERED, ids=list(device_ids))}


def add_devices(tx: Tx, devices: Sequence[DeviceRegistration]) -> list[str]:
    """Register devices; returns the ids inserted (an id registered meanwhile is left out, and not in the list)."""
    return [row[0] for d in devices if (row := tx.one(ADD, asdict(d))) is not None]


def revoke(tx: Tx, device_id: str, now_ms: int) -> bool:
    """Mark a registered, unrevoked device revoked; False if there was none."""
    return int(tx.run(REVOKE, device_id=device_id, now_ms=now_ms).rowcount) > 0


def active_devices(tx: Tx) -> list[tuple[str, str, str]]:
    """(device_id, agency_id, kind) of every device not revoked, by device id."""
    return [(d, a, k) for d, a, k in tx.all(ACTIVE)]


def active_device_ids(tx: Tx) -> set[str]:
    return {d for d, _, _ in active_devices(tx)}
