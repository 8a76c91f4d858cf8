"""HTTP API of evidence integrity: media of an inspection, inclusion and consistency proofs, tree heads, verification."""

from __future__ import annotations

import base64
import threading
import time
from typing import Annotated

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.params import PathParameter, QueryParameter

from server import db as dbmod
from server.console.guards import supervisors
from protocol import merkle
from server.console import evidence_public
from server.console.auth import CurrentPrincipal, Principal
from server.evidence.bundle import Selector, export, file_name
from server.evidence.records import record as server_record
from server.console.inspect_api import check_inspection
from server.evidence.coverage import Coverage, coverage
from server.console.limits import PerUserRate
from server.errors import Forbidden, Invalid, NotFound, TooLarge, TooManyRequests, answers
from server.evidence.log import LEAF_COLUMNS, TreeHead, head_of_whole_log, index_of, leaf_hashes, log_size, row_leaf_hash, tree_head_of_size
from server.storage import evidence as evstore
from server.storage.engine import storage_for
from server.evidence.verify import VerifyReport, verify


#: The largest log size a request may name (SQLite's INTEGER range): a larger one is a 400, not an overflow.
MAX_LOG_SIZE = 2**63 - 1
LogSize = Annotated[int, QueryParameter(ge=1, le=MAX_LOG_SIZE, description="a size of the log (records)")]


class InclusionProof(msgspec.Struct, kw_only=True):
    """Proof that a record is in the log at a tree head (RFC 6962 audit path, hex)."""

    event_id: str
    log_index: int
    leaf_hash: str
    tree_size: int
    root_hash: str
    audit_path: list[str]
    tree_head: TreeHead | None


class ConsistencyProof(msgspec.Struct, kw_only=True):
    """Proof that the log of ``second`` records extends the log of ``first`` (RFC 6962, hex)."""

    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


def current_tree_head(state: State) -> TreeHead:
    """The latest signed tree head, signing a new one if the log grew since."""
    return storage_for(state.settings.db).write(lambda tx: head_of_whole_log(tx, state.server_key))


class LoggedRecord(msgspec.Struct, kw_only=True):
    """A record as the evidence log hashed it: its index, its leaf hash, and every leaf column (bytes in base64)."""

    log_index: int | None
    leaf_hash: str
    columns: dict[str, str | int | None]


class EvidenceController(Controller):
    """The tamper-evident log and its proofs."""

    path = "/api/v1/evidence"
    tags = ["evidence"]

    @get("/tree-head", sync_to_thread=True, responses=answers(NotFound))
    def tree_head(
        self, state: State, size: Annotated[int | None, QueryParameter(ge=0, le=MAX_LOG_SIZE, description="a past head of this size (every head signed is kept)")] = None
    ) -> TreeHead:
        """The latest signed tree head (export it: later heads must be consistent with it); with ``size``, the first
        head the server signed at that size (404 if it signed none). Public: no sign-in."""
        if size is None:
            return current_tree_head(state)
        with dbmod.reading(state.settings.db) as tx:
            head = tree_head_of_size(tx, size, state.server_public_key)
        if head is None:
            raise NotFound(f"平台未签署过 {size} 条记录的树头 / the server signed no tree head of size {size}")
        return head

    @get("/proof/{event_id:str}", sync_to_thread=True)
    def proof(
        self,
        state: State,
        event_id: Annotated[str, PathParameter(description="the record's event id")],
        tree_size: Annotated[int | None, QueryParameter(ge=1, le=MAX_LOG_SIZE, description="prove against this size (default: the latest head)")] = None,
    ) -> InclusionProof:
        """Inclusion proof of one record (400 if the size is larger than the log or does not hold the record)."""
        head = current_tree_head(state) if tree_size is None else None
        size = head.tree_size if head else tree_size
        assert size is not None
        with dbmod.reading(state.settings.db) as tx:
            index = index_of(tx, event_id)
            if index is None:
                raise NotFound(f"证据日志中没有记录 {event_id!r} / record {event_id!r} is not in the evidence log")
            logged = log_size(tx)  # checked before any leaf is read: a size is never trusted
            if size > logged:
                raise Invalid(f"证据日志只有 {logged} 条记录 / the log has {logged} records, not {size}")
            if index >= size:
                raise Invalid(f"记录 {event_id!r} 的序号为 {index}，不在 {size} 条的树中 / record {event_id!r} has index {index}, outside a tree of {size}")
            leaves = leaf_hashes(tx, size)
        return InclusionProof(
            event_id=event_id,
            log_index=index,
            leaf_hash=leaves[index].hex(),
            tree_size=size,
            root_hash=merkle.root(leaves).hex(),
            audit_path=[h.hex() for h in merkle.inclusion_proof(leaves, index)],
            tree_head=head,
        )

    @get("/consistency", sync_to_thread=True)
    def consistency(
        self, state: State, first: LogSize, second: Annotated[int | None, QueryParameter(ge=1, le=MAX_LOG_SIZE, description="a later size (default: the latest head's)")] = None
    ) -> ConsistencyProof:
        """Consistency proof between two sizes of the log (second defaults to the latest head's; 400 unless first <= second <= the log's size)."""
        size = second if second is not None else current_tree_head(state).tree_size
        with dbmod.reading(state.settings.db) as tx:
            logged = log_size(tx)  # checked before any leaf is read: a size is never trusted
            if size > logged or first > size:
                raise Invalid(f"须满足 first <= second <= {logged}（日志大小）/ need first <= second <= {logged} (the log's size), got {first} and {size}")
            leaves = leaf_hashes(tx, size)
        return ConsistencyProof(
            first=first,
            second=size,
            first_root=merkle.root(leaves[:first]).hex(),
            second_root=merkle.root(leaves).hex(),
            proof=[h.hex() for h in merkle.consistency_proof(leaves, first)],
        )

    @get("/record/{event_id:str}", sync_to_thread=True, guards=[supervisors])
    def record(self, state: State, event_id: Annotated[str, PathParameter(description="the record's event id")]) -> LoggedRecord:
        """A record exactly as logged, so an auditor can rebuild its leaf hash and check it against a proof
        (supervisors; everyone else gets their records in an evidence bundle): a device event's 11 leaf columns (body
        and signature in base64), or a server record's 5 values (``rec:`` ids; body in base64)."""
        with dbmod.reading(state.settings.db) as tx:
            row = evstore.leaf_row(tx, event_id)
            rec = server_record(tx, event_id) if row is None else None
            index = index_of(tx, event_id)
        if rec is not None:
            cols = {"record_id": rec.record_id, "kind": rec.kind, "subject": rec.subject, "at_ms": rec.at_ms, "body": base64.b64encode(rec.body).decode()}
            return LoggedRecord(log_index=index, leaf_hash=rec.leaf_hash().hex(), columns=cols)  # type: ignore[arg-type]
        if row is None:
            raise NotFound(f"没有记录 {event_id!r} / record {event_id!r} is not stored")
        return LoggedRecord(
            log_index=index,
            leaf_hash=row_leaf_hash(row).hex(),
            columns={k: (base64.b64encode(bytes(v)).decode() if isinstance(v, (bytes, memoryview)) else v) for k, v in zip(LEAF_COLUMNS, row, strict=True)},
        )

    @get("/verify", sync_to_thread=True, guards=[supervisors])
    def verify_report(self, state: State, signatures: Annotated[bool, QueryParameter(description="also check every device signature")] = False) -> VerifyReport:
        """Recompute the log from the database and report every record changed, added or removed (supervisors)."""
        with dbmod.reading(state.settings.db) as tx:
            return verify(tx, state.server_public_key, signatures=signatures)


@get("/api/v1/inspections/{inspection_id:str}/media", sync_to_thread=True, tags=["evidence"])
def inspection_media(state: State, inspection_id: Annotated[str, PathParameter(description="inspection id")], principal: CurrentPrincipal) -> Coverage:
    """The recordings of an inspection and whether it was recorded from start to end."""
    with dbmod.reading(state.settings.db) as tx:
        check_inspection(tx, principal, inspection_id)
        try:
            return coverage(tx, inspection_id)
        except KeyError:
            raise NotFound(f"检查 {inspection_id!r} 不存在 / inspection {inspection_id!r} does not exist") from None


Period = Annotated[int, QueryParameter(ge=0, le=MAX_LOG_SIZE, description="epoch ms (from inclusive, to exclusive)")]


_LIMITER_LOCK = threading.Lock()


def export_limit(state: State) -> PerUserRate:
    """This app's per-user limit of bundle exports (``bundle_exports_per_minute``), made on first use."""
    with _LIMITER_LOCK:
        limiter = state.get("bundle_exports")
        if limiter is None:
            limiter = state["bundle_exports"] = PerUserRate(state.settings.bundle_exports_per_minute, ("导出证据包", "evidence bundles exported"))
        return limiter


def _bundle(state: State, principal: Principal, sel: Selector) -> Response[bytes]:
    limit = export_limit(state)
    # 429 with Retry-After once allowed and well-formed, before any work (a refused request costs no count)
    data, _ = export(state.settings.db, state.server_key, sel, principal, admitted=lambda: limit.check(principal.username))
    name = file_name(sel, int(time.time() * 1000))
    return Response(content=data, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{name}"'})


class BundleController(Controller):
    """Evidence bundles (证据包): one ZIP an outside party checks offline (python -m protocol.verify_bundle FILE).

    Who may export what: a supervisor everything; an agency's administrator what its agency took part in (an
    enterprise's period cut to its own inspections and scans, its own devices); an officer the inspections they took
    part in; an enterprise the inspections of itself; a case whoever may see it. 401 without a session, 403 for another's, 413 for a selection
    of more than 5000 records (give a shorter period), 400 for a period longer than 366 days, 429 with Retry-After
    past ``bundle_exports_per_minute`` requests of one user in a minute."""

    path = "/api/v1/evidence/bundles"
    tags = ["evidence"]

    @get("/inspection/{inspection_id:str}", sync_to_thread=True, media_type="application/zip", responses=answers(Invalid, Forbidden, NotFound, TooLarge, TooManyRequests))
    def of_inspection(self, state: State, principal: CurrentPrincipal, inspection_id: Annotated[str, PathParameter(description="inspection id")]) -> Response[bytes]:
        """The bundle of one inspection: its scans, device events, recordings' hashes and the server's records of it."""
        return _bundle(state, principal, Selector(kind="inspection", inspection_id=inspection_id))

    @get("/case/{case_id:str}", sync_to_thread=True, media_type="application/zip", responses=answers(Invalid, Forbidden, NotFound, TooLarge, TooManyRequests))
    def of_case(self, state: State, principal: CurrentPrincipal, case_id: Annotated[str, PathParameter(description="case id")]) -> Response[bytes]:
        """The bundle of a case (案件): the server's records of each of its steps and its inspections' records (who may
        see the case: 404 to others, as the cases API answers)."""
        return _bundle(state, principal, Selector(kind="case", case_id=case_id))

    @get("/enterprise/{credit_code:str}", sync_to_thread=True, media_type="application/zip", responses=answers(Invalid, Forbidden, NotFound, TooLarge, TooManyRequests))
    def of_enterprise(
        self, state: State, principal: CurrentPrincipal, credit_code: Annotated[str, PathParameter(description="unified social credit code")], from_ms: Period, to_ms: Period
    ) -> Response[bytes]:
        """The bundle of an enterprise's inspections opened in [from_ms, to_ms), and its terminal scans then."""
        return _bundle(state, principal, Selector(kind="enterprise", credit_code=credit_code, from_ms=from_ms, to_ms=to_ms))

    @get("/device/{device_id:str}", sync_to_thread=True, media_type="application/zip", responses=answers(Invalid, Forbidden, NotFound, TooLarge, TooManyRequests))
    def of_device(
        self, state: State, principal: CurrentPrincipal, device_id: Annotated[str, PathParameter(description="device id")], from_ms: Period, to_ms: Period
    ) -> Response[bytes]:
        """The bundle of a device's events stamped in [from_ms, to_ms) (supervisors, the device's agency)."""
        return _bundle(state, principal, Selector(kind="device", device_id=device_id, from_ms=from_ms, to_ms=to_ms))


#: This module's routes (server/app.py): the API above, evidence bundles, and the public page of the daily heads.
ROUTES = [EvidenceController, inspection_media, BundleController, *evidence_public.ROUTES]
