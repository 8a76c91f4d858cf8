"""HTTP endpoints: health, metrics, and the JSON API over devices, events and rejected messages."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Annotated

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter, QueryParameter

from server import db as dbmod
from server.console.auth import CurrentPrincipal
from server.errors import Forbidden, NotFound
from server.console.guards import managers, supervisors
from server.storage import console
from server.storage.inspections import device_agency
from server.storage.engine import Tx
from server.ingest.store import REJECTED_COLUMNS, recent_rejected, rejected_counts, sequence_gaps


class Health(msgspec.Struct, kw_only=True):
    """Liveness of the ingest and the database."""

    status: str  # ok, degraded (the database cannot write: the ingest is paused), failing
    mqtt_connected: bool
    ingest_writer: str
    ingest_queue: int
    events_stored: int
    reason: str | None = None  # why not ok


class Gap(msgspec.Struct, kw_only=True):
    """Sequence numbers a device used that never arrived."""

    seq_from: int
    seq_to: int
    missing: int


class DeviceView(msgspec.Struct, kw_only=True):
    """A registered device and what the server knows of it."""

    device_id: str
    model: str
    kind: str
    agency_id: str
    wire_format: str
    registered_ms: int
    revoked: bool
    last_seen_ms: int | None
    max_seq: int
    stored_count: int
    duplicate_count: int
    gaps: list[Gap] | None = None


class EventView(msgspec.Struct, kw_only=True):
    """One stored event, decoded."""

    event_id: str
    device_id: str
    seq: int
    type: str
    device_time_ms: int
    clock_error_ms: int
    received_ms: int
    stored_ms: int
    clock_suspect: str | None = None  # why its device time cannot be right (server/ingest/clocks.py), or null
    body: msgspec.Raw


class RejectedView(msgspec.Struct, kw_only=True):
    """A message kept aside, with its reason (its first bytes, if still kept, are in the database)."""

    id: int
    received_ms: int
    topic: str
    device_id: str | None
    event_id: str | None
    reason_code: str
    reason: str
    size: int  # bytes of the whole payload as received
    sha256: str | None  # of the whole payload (null only for rows kept whole before this was recorded)
    kept: int  # bytes of the payload still stored: a prefix, or 0 once pruned (server/ingest/store.py)


class RejectedCountView(msgspec.Struct, kw_only=True):
    """How many messages were refused for one reason since the database began (never lowered by pruning)."""

    reason_code: str
    count: int
    last_ms: int


class Pong(msgspec.Struct, kw_only=True):
    """The answer of /ping."""

    ok: bool


class Overview(msgspec.Struct, kw_only=True):
    """Totals for the dashboard."""

    devices: int
    events: int
    events_last_minute: int
    rejected: int
    devices_with_gaps: int
    mqtt_connected: bool
    recent: list[EventView]


DevicePath = Annotated[str, PathParameter(description="device id, e.g. BR-00001")]


def _check_agency(principal: CurrentPrincipal, agency_id: str | None) -> None:
    if not principal.may_see_agency(agency_id):
        raise Forbidden("这是其他执法机关的记录，无权查看 / this record belongs to another agency")


def _read(state: State) -> AbstractContextManager[Tx]:
    return dbmod.reading(state.settings.db)


def _device(row: tuple) -> DeviceView:  # type: ignore[type-arg]
    d = dict(zip(console.DEVICE_COLUMNS, row, strict=True))
    d["revoked"] = bool(d["revoked"])
    return DeviceView(**d)


def _event(row: tuple) -> EventView:  # type: ignore[type-arg]
    *head, body = row
    keys = console.EVENT_COLUMNS[:-1]
    return EventView(**dict(zip(keys, head, strict=True)), body=msgspec.Raw(body.encode()))


def _gaps(con: Tx, device_id: str) -> list[Gap]:
    return [Gap(seq_from=a, seq_to=b, missing=b - a + 1) for a, b in sequence_gaps(con, device_id)]


@get(
    "/health", sync_to_thread=True, tags=["operations"],
    responses={503: ResponseSpec(Health, description="The ingest writer stopped (failing), or the ingest cannot do its work (degraded): the database cannot write and the ingest is paused until it can, the broker refuses its login, or another ingest process uses its broker client id (this one waits for it).")},
)  # fmt: skip
def health(state: State) -> Response[Health]:
    """200 while the ingest writer runs and the database answers; 503 otherwise."""
    ingest = state.ingest
    with _read(state) as con:
        stored = console.events_stored(con)
    writer = "disabled" if ingest is None else ("running" if ingest.healthy else f"stopped: {ingest.writer_error}")
    degraded = ingest.degraded if ingest is not None and ingest.healthy else None
    ok = (ingest is None or ingest.healthy) and degraded is None
    body = Health(
        status="ok" if ok else ("degraded" if degraded else "failing"),
        mqtt_connected=bool(ingest and ingest.connected),
        ingest_writer=writer if degraded is None else "paused",
        ingest_queue=ingest.queue_depth if ingest else 0,
        events_stored=stored,
        reason=None if ok else (degraded or writer),
    )
    return Response(body, status_code=200 if ok else 503)


@get("/ping", sync_to_thread=False, tags=["operations"])
def ping() -> Pong:
    """Does nothing: the baseline for load measurements."""
    return Pong(ok=True)


@get("/metrics", sync_to_thread=False, tags=["operations"], media_type="text/plain; version=0.0.4")
def metrics(state: State) -> bytes:
    """Prometheus metrics: received, stored, duplicates merged, rejected by reason, ingest lag."""
    return state.metrics.render()


class DeviceController(Controller):
    """Registered devices, their delivery state and sequence gaps."""

    path = "/api/v1/devices"
    tags = ["devices"]
    guards = [managers]

    @get("/", sync_to_thread=True)
    def list_devices(self, state: State, principal: CurrentPrincipal) -> list[DeviceView]:
        """Every registered device (an agency's staff: their agency's)."""
        with _read(state) as con:
            return [_device(r) for r in console.devices(con) if principal.may_see_agency(r[3])]

    @get("/{device_id:str}", sync_to_thread=True)
    def get_device(self, state: State, device_id: DevicePath, principal: CurrentPrincipal) -> DeviceView:
        """One device, with its sequence gaps."""
        with _read(state) as con:
            row = console.device(con, device_id)
            if row is None:
                raise NotFound(f"device {device_id!r} is not registered")
            _check_agency(principal, row[3])
            view = _device(row)
            view.gaps = _gaps(con, device_id)
            return view

    @get("/{device_id:str}/gaps", sync_to_thread=True)
    def get_gaps(self, state: State, device_id: DevicePath, principal: CurrentPrincipal) -> list[Gap]:
        """Sequence numbers the device used that never arrived."""
        with _read(state) as con:
            agency_id = device_agency(con, device_id)
            if agency_id is None:
                raise NotFound(f"device {device_id!r} is not registered")
            _check_agency(principal, agency_id)
            return _gaps(con, device_id)


class EventController(Controller):
    """Stored events."""

    path = "/api/v1/events"
    tags = ["events"]
    guards = [supervisors]

    @get("/", sync_to_thread=True)
    def list_events(
        self,
        state: State,
        device_id: Annotated[str | None, QueryParameter(description="only this device's events")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="most recent N")] = 50,
    ) -> list[EventView]:
        """The most recently stored events (supervisors)."""
        with _read(state) as con:
            return [_event(r) for r in console.events(con, device_id=device_id, limit=limit)]


class RejectedController(Controller):
    """Messages kept aside with their reasons."""

    path = "/api/v1/rejected"
    tags = ["events"]
    guards = [supervisors]

    @get("/", sync_to_thread=True)
    def list_rejected(self, state: State, limit: Annotated[int, QueryParameter(ge=1, le=1000, description="most recent N")] = 100) -> list[RejectedView]:
        """The most recent rejected messages (supervisors)."""
        with _read(state) as con:
            return [RejectedView(**dict(zip(REJECTED_COLUMNS, r, strict=True))) for r in recent_rejected(con, limit)]

    @get("/counts", sync_to_thread=True)
    def count_rejected(self, state: State) -> list[RejectedCountView]:
        """Every reason's total of refused messages, most frequent first (supervisors)."""
        with _read(state) as con:
            return [RejectedCountView(reason_code=c.reason_code, count=c.count, last_ms=c.last_ms) for c in rejected_counts(con)]


@get("/api/v1/overview", sync_to_thread=True, tags=["dashboard"], guards=[supervisors])
def overview(state: State) -> Overview:
    """Totals and the latest events, for the dashboard (supervisors)."""
    with _read(state) as con:
        devices, events, minute, with_gaps = console.totals(con, since_ms=int(time.time() * 1000) - 60_000)
        rejected = sum(c.count for c in rejected_counts(con))  # every refusal, also those whose rows were pruned
        recent = [_event(r) for r in console.events(con, device_id=None, limit=20)]
    ingest = state.ingest
    return Overview(
        devices=devices,
        events=events,
        events_last_minute=minute,
        rejected=rejected,
        devices_with_gaps=with_gaps,
        mqtt_connected=bool(ingest and ingest.connected),
        recent=recent,
    )
