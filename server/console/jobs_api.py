"""HTTP API of the scheduled jobs: status, random draws, disclosure, sampling (their pages: server/console/pages.py)."""

from __future__ import annotations

import datetime as dt
import json
import time
from contextlib import AbstractContextManager
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter

from server import db as dbmod
from server.console import labels
from server.console.auth import CurrentPrincipal
from server.jobs.disclosure import decision_agency, on_time_rates, pass_rates, record_decision, record_disclosure, record_review
from server.jobs.draws import DrawResult, commit_draw, public_view
from server.errors import Conflict, Forbidden, NotFound, answers
from server.console.guards import managers, supervisors
from server.jobs.tasks import JOBS
from server.storage import jobs as stored
from server.storage.engine import Tx
from server.rules.workdays import check_day

#: The instants a draw may be set for: 2000-01-01 to 2100-01-01 UTC (epoch ms). Beyond SQLite's 64-bit
#: integers (10**30, 2**63) the insert overflowed: a 500; -10**18 was accepted.
FIRST_MS, LAST_MS = 946_684_800_000, 4_102_444_800_000

IdPath = Annotated[str, PathParameter(description="identifier")]


class DrawIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A draw to announce: its seed is committed now (hash published) and it is drawn at ``draw_at_ms``."""

    agency_id: str
    field: str
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    enterprises: Annotated[int, msgspec.Meta(ge=1, le=10000)]
    officers_per_team: Annotated[int, msgspec.Meta(ge=1, le=10)] = 2
    region: str = ""
    #: Default: at the next run of the draws job. Bounded like every instant the server keeps (2000-2100 UTC).
    draw_at_ms: Annotated[int, msgspec.Meta(ge=FIRST_MS, le=LAST_MS)] | None = None


class DecisionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An enforcement decision to be disclosed."""

    decision_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    agency_id: str
    kind: Literal["penalty", "permit", "other"]
    decided_on: dt.date
    case_no: str = ""
    credit_code: str | None = None

    def __post_init__(self) -> None:
        check_day("decided_on", self.decided_on)  # a ValueError here is msgspec's 400 naming the field


class DisclosureIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """When a decision was disclosed."""

    disclosed_on: dt.date

    def __post_init__(self) -> None:
        check_day("disclosed_on", self.disclosed_on)


class ReviewIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The review of one sampled case file."""

    decision_id: str
    result: Literal["pass", "fail"]
    reviewer: Annotated[str, msgspec.Meta(min_length=1)]
    notes: str = ""


class JobView(msgspec.Struct, kw_only=True):
    """A scheduled job: its schedule, next run (from the scheduler) and last run with its outcome."""

    id: str
    name_zh: str
    name_en: str
    schedule: str
    next_run_ms: int | None
    last_run_ms: int | None
    last_finished_ms: int | None
    last_outcome: str | None
    last_detail: str | None


class RunScheduled(msgspec.Struct, kw_only=True):
    """A job asked to run now."""

    status: Literal["scheduled"]
    job_id: str


class DrawAnnounced(msgspec.Struct, kw_only=True):
    """A draw announced: its seed's hash is public from now on, at its public page."""

    draw_id: str
    seed_hash: str
    public_page: str


class DrawView(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A draw as the public sees it: the seed (null until drawn) and the result once drawn."""

    draw_id: str
    agency_id: str
    field: str
    region: str
    title: str
    enterprise_count: int
    officers_per_team: int
    seed_hash: str
    seed: str | None
    committed_ms: int
    draw_at_ms: int
    drawn_ms: int | None
    status: str
    result: DrawResult | None


class DecisionRecorded(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A registered decision and its disclosure deadline (approximate if the working-day calendar does not cover it)."""

    decision_id: str
    deadline: str  # YYYY-MM-DD
    calendar_approximate: bool


class Disclosed(msgspec.Struct, kw_only=True):
    """A disclosure recorded: on time or late."""

    decision_id: str
    status: str


class OnTimeRate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One agency's decisions due for disclosure and those disclosed on time (the rate null without any due)."""

    agency_id: str
    on_time: int
    due: int
    on_time_rate: float | None


class SampleRate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One case-file sample: how many were sampled, reviewed and passed (the rate null before any review)."""

    sample_id: str
    agency_id: str
    period: str
    sampled: int
    reviewed: int
    passed: int
    pass_rate: float | None


class Reviewed(msgspec.Struct, kw_only=True):
    """A review recorded."""

    sample_id: str
    decision_id: str
    result: Literal["pass", "fail"]


def _own_agency(principal: CurrentPrincipal, agency_id: str) -> None:
    """An agency's administrator acts for their own agency only (a supervisor for any)."""
    if not principal.may_see_agency(agency_id):
        raise Forbidden(f"只能处理本机关的事项 / you act for your own agency only, not {agency_id}")


def _write(state: State) -> AbstractContextManager[Tx]:
    return dbmod.writing(state.settings.db)


#: What a job's result counts, as a sentence's parts: key -> (Chinese, English) with {n} for the number.
_COUNTS: dict[str, tuple[str, str]] = {
    "offline_alerts": ("{n} 台设备离线预警", "{n} device(s) reported offline"), "backlog_alerts": ("{n} 台设备积压预警", "{n} device backlog alert(s)"),
    "drawn": ("完成 {n} 次抽取", "{n} draw(s) performed"), "warned": ("{n} 项公示即将到期", "{n} disclosure(s) due soon"),
    "missed": ("{n} 项公示逾期", "{n} disclosure(s) missed"), "tree_size": ("证据日志共 {n} 条，已签名", "evidence log signed at {n} entries"),
    "samples": ("抽取 {n} 份案卷", "{n} case file(s) sampled"), "status_events_removed": ("清理 {n} 条设备状态", "{n} status event(s) removed"),
    "rejected_removed": ("清理 {n} 条拒收消息", "{n} rejected message(s) removed"), "checked": ("检查 {n} 次已结束的检查", "{n} ended inspection(s) checked"),
    "unrecorded": ("{n} 次未全程记录", "{n} not recorded start to end"), "overdue": ("{n} 份监督文书逾期", "{n} letter(s) overdue"),
}  # fmt: skip


def schedule_words(job_id: str, lang: str) -> str:
    """A job's schedule as a person says it: 每天 02:00, 每月 1 日 02:00, 每 1 分钟 (Every day at 02:00 ...)."""
    trigger = JOBS[job_id][1] if job_id in JOBS else {}
    zh = lang == "zh"
    if trigger.get("trigger") == "interval":
        minutes = int(trigger.get("minutes", 0)) + 60 * int(trigger.get("hours", 0))
        return ("每分钟" if minutes == 1 else f"每 {minutes} 分钟") if zh else ("Every minute" if minutes == 1 else f"Every {minutes} minutes")
    if trigger.get("trigger") == "cron":
        minute = int(trigger.get("minute", 0))
        times = "、".join(f"{int(h):02d}:{minute:02d}" for h in str(trigger.get("hour", 0)).split(","))
        if "day" in trigger:
            return f"每月 {trigger['day']} 日 {times}" if zh else f"Day {trigger['day']} of every month at {times.replace('、', ', ')}"
        return f"每天 {times}" if zh else f"Every day at {times.replace('、', ', ')}"
    return "按需运行" if zh else "When asked"


def outcome_words(outcome: str | None, detail: str | None, lang: str) -> str:
    """A job's last outcome as a sentence: "已完成：4 台设备离线预警，0 台设备积压预警。" or the error it failed with."""
    zh = lang == "zh"
    if outcome is None:
        return "尚未运行。" if zh else "Not run yet."
    head = labels.label("job_outcome", outcome, lang)
    if outcome == "error":
        return (f"{head}：{(detail or '')[:120]}（下次按计划重试）" if zh else f"{head}: {(detail or '')[:120]} (tried again at the next run)")
    try:
        result = json.loads(detail or "{}")
    except ValueError:
        result = {}
    parts = []
    for key, value in result.items() if isinstance(result, dict) else ():
        if key in _COUNTS and isinstance(value, int | list):
            parts.append(_COUNTS[key][0 if zh else 1].format(n=len(value) if isinstance(value, list) else value))
    if not parts:
        return f"{head}。" if zh else f"{head}."
    return f"{head}：{'，'.join(parts)}。" if zh else f"{head}: {', '.join(parts)}."


def _read(state: State) -> AbstractContextManager[Tx]:
    return dbmod.reading(state.settings.db)


def job_status(state: State) -> list[JobView]:
    """Every job: next run (from the scheduler) and last run with its outcome."""
    scheduler = state.scheduler
    nexts = {j["id"]: j for j in scheduler.jobs()} if scheduler else {}
    with _read(state) as tx:
        out = []
        for job_id, (_, trigger, zh, en) in JOBS.items():
            last = stored.last_run(tx, job_id)
            out.append(
                JobView(
                    id=job_id, name_zh=zh, name_en=en, schedule=nexts.get(job_id, {}).get("trigger", json.dumps(trigger)),
                    next_run_ms=nexts.get(job_id, {}).get("next_run_ms"),
                    last_run_ms=last[0] if last else None, last_finished_ms=last[1] if last else None,
                    last_outcome=last[2] if last else None, last_detail=last[3] if last else None,
                )
            )  # fmt: skip
        return out


class JobController(Controller):
    """The scheduled jobs."""

    path = "/api/v1/jobs"
    tags = ["jobs"]
    guards = [supervisors]

    @get("/", sync_to_thread=True)
    def list_jobs(self, state: State) -> list[JobView]:
        """Every job with its last run, next run and outcome (supervisors)."""
        return job_status(state)

    @post("/{job_id:str}/run", sync_to_thread=True, status_code=202, responses=answers(Conflict))
    def run(self, state: State, job_id: IdPath) -> RunScheduled:
        """Have a job run now (its schedule is kept; supervisors)."""
        if job_id not in JOBS:
            raise NotFound(f"no job {job_id!r}; jobs: {', '.join(JOBS)}")
        if state.scheduler is None:
            raise Conflict("本服务器未运行定时任务 / the scheduler is not running on this server")
        state.scheduler.run_now(job_id)
        return RunScheduled(status="scheduled", job_id=job_id)


class DrawController(Controller):
    """Random draws (双随机、一公开)."""

    path = "/api/v1/draws"
    tags = ["jobs"]

    @post("/", sync_to_thread=True, status_code=201, guards=[managers])
    def create(self, state: State, data: JSONBody[DrawIn], principal: CurrentPrincipal) -> DrawAnnounced:
        """Announce a draw: its seed's hash is public from now on (supervisors, or the agency's administrator)."""
        _own_agency(principal, data.agency_id)
        now_ms = int(time.time() * 1000)
        with _write(state) as con:
            draw_id, seed_hash = commit_draw(  # a DrawError is a 400 (server.errors.Invalid)
                con, agency_id=data.agency_id, field=data.field, region=data.region, title=data.title, enterprises=data.enterprises,
                officers_per_team=data.officers_per_team, draw_at_ms=data.draw_at_ms or now_ms, now_ms=now_ms,
                policy=state.policy, announced_by=principal.username, by_supervisor=principal.role == "supervisor",
            )  # fmt: skip
        return DrawAnnounced(draw_id=draw_id, seed_hash=seed_hash, public_page=f"/public/draws/{draw_id}")

    @get("/{draw_id:str}", sync_to_thread=True)
    def get_draw(self, state: State, draw_id: IdPath) -> DrawView:
        """A draw as the public sees it (the seed only once drawn)."""
        with _read(state) as con:
            view = public_view(con, draw_id)
        if view is None:
            raise NotFound(f"no draw {draw_id!r}")
        return msgspec.convert(view, DrawView)


class DisclosureController(Controller):
    """Decisions to disclose (行政执法公示) and case-file samples (案卷评查)."""

    path = "/api/v1"
    tags = ["jobs"]

    @post("/decisions", sync_to_thread=True, status_code=201, guards=[managers], responses=answers(Conflict))
    def add_decision(self, state: State, data: JSONBody[DecisionIn], principal: CurrentPrincipal) -> DecisionRecorded:
        """Register a decision; its disclosure deadline is counted in working days."""
        _own_agency(principal, data.agency_id)
        with _write(state) as con:
            recorded = record_decision(  # Conflict when the id is registered already
                con, decision_id=data.decision_id, agency_id=data.agency_id, kind=data.kind, decided_on=data.decided_on, case_no=data.case_no, credit_code=data.credit_code
            )
        return msgspec.convert(recorded, DecisionRecorded)

    @post("/decisions/{decision_id:str}/disclosure", sync_to_thread=True, status_code=200, guards=[managers])
    def disclose(self, state: State, decision_id: IdPath, data: JSONBody[DisclosureIn], principal: CurrentPrincipal) -> Disclosed:
        """Record the disclosure of a decision."""
        with _write(state) as con:
            agency_id = decision_agency(con, decision_id)
            if agency_id is not None:
                _own_agency(principal, agency_id)
            return Disclosed(decision_id=decision_id, status=record_disclosure(con, decision_id, data.disclosed_on))

    @get("/disclosure/rates", sync_to_thread=True, guards=[supervisors])
    def rates(self, state: State) -> list[OnTimeRate]:
        """On-time disclosure rate per agency (supervisors)."""
        with _read(state) as con:
            return msgspec.convert(on_time_rates(con), list[OnTimeRate])

    @get("/samples", sync_to_thread=True, guards=[supervisors])
    def samples(self, state: State) -> list[SampleRate]:
        """Case-file samples with their review progress and pass rate (supervisors)."""
        with _read(state) as con:
            return msgspec.convert(pass_rates(con), list[SampleRate])

    @post("/samples/{sample_id:str}/reviews", sync_to_thread=True, status_code=200, guards=[supervisors])
    def review(self, state: State, sample_id: IdPath, data: JSONBody[ReviewIn]) -> Reviewed:
        """Record the review of a sampled case file (supervisors)."""
        with _write(state) as con:
            record_review(con, sample_id, data.decision_id, data.result, data.reviewer, data.notes, int(time.time() * 1000))
        return Reviewed(sample_id=sample_id, decision_id=data.decision_id, result=data.result)
