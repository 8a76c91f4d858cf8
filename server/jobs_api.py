"""HTTP API and pages of the scheduled jobs: status, random draws (and their public page), disclosure, sampling."""

from __future__ import annotations

import datetime as dt
import html
import json
import time
from contextlib import AbstractContextManager
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, MediaType, get, post
from litestar.datastructures import State
from litestar.exceptions import ClientException, NotFoundException, PermissionDeniedException
from litestar.params import JSONBody, PathParameter, QueryParameter

from server import db as dbmod
from server.auth import CurrentPrincipal
from server.disclosure import DisclosureError, decision_agency, on_time_rates, pass_rates, record_decision, record_disclosure, record_review
from server.draws import DrawError, commit_draw, public_view
from server.errors import Conflict, answers
from server.jobs import JOBS
from server.storage import draws as stored_draws
from server.storage import jobs as stored
from server.storage.engine import Tx
from server.workdays import check_day

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


def _own_agency(principal: CurrentPrincipal, agency_id: str) -> None:
    principal.require("supervisor", "agency_admin")
    if not principal.may_see_agency(agency_id):
        raise PermissionDeniedException(f"只能处理本机关的事项 / you act for your own agency only, not {agency_id}")


def _write(state: State) -> AbstractContextManager[Tx]:
    return dbmod.writing(state.settings.db)


def _read(state: State) -> AbstractContextManager[Tx]:
    return dbmod.reading(state.settings.db)


def job_status(state: State) -> list[dict[str, Any]]:
    """Every job: next run (from the scheduler) and last run with its outcome."""
    scheduler = state.scheduler
    nexts = {j["id"]: j for j in scheduler.jobs()} if scheduler else {}
    with _read(state) as tx:
        out = []
        for job_id, (_, trigger, zh, en) in JOBS.items():
            last = stored.last_run(tx, job_id)
            out.append(
                {
                    "id": job_id, "name_zh": zh, "name_en": en, "schedule": nexts.get(job_id, {}).get("trigger", json.dumps(trigger)),
                    "next_run_ms": nexts.get(job_id, {}).get("next_run_ms"),
                    "last_run_ms": last[0] if last else None, "last_finished_ms": last[1] if last else None,
                    "last_outcome": last[2] if last else None, "last_detail": last[3] if last else None,
                }
            )  # fmt: skip
        return out


class JobController(Controller):
    """The scheduled jobs."""

    path = "/api/v1/jobs"
    tags = ["jobs"]

    @get("/", sync_to_thread=True)
    def list_jobs(self, state: State, principal: CurrentPrincipal) -> list[dict[str, Any]]:
        """Every job with its last run, next run and outcome (supervisors)."""
        principal.require("supervisor")
        return job_status(state)

    @post("/{job_id:str}/run", sync_to_thread=True, status_code=202, responses=answers(Conflict))
    def run(self, state: State, job_id: IdPath, principal: CurrentPrincipal) -> dict[str, str]:
        """Have a job run now (its schedule is kept; supervisors)."""
        principal.require("supervisor")
        if job_id not in JOBS:
            raise NotFoundException(f"no job {job_id!r}; jobs: {', '.join(JOBS)}")
        if state.scheduler is None:
            raise Conflict("本服务器未运行定时任务 / the scheduler is not running on this server")
        state.scheduler.run_now(job_id)
        return {"status": "scheduled", "job_id": job_id}


class DrawController(Controller):
    """Random draws (双随机、一公开)."""

    path = "/api/v1/draws"
    tags = ["jobs"]

    @post("/", sync_to_thread=True, status_code=201)
    def create(self, state: State, data: JSONBody[DrawIn], principal: CurrentPrincipal) -> dict[str, Any]:
        """Announce a draw: its seed's hash is public from now on (supervisors, or the agency's administrator)."""
        _own_agency(principal, data.agency_id)
        now_ms = int(time.time() * 1000)
        with _write(state) as con:
            try:
                draw_id, seed_hash = commit_draw(
                    con, agency_id=data.agency_id, field=data.field, region=data.region, title=data.title, enterprises=data.enterprises,
                    officers_per_team=data.officers_per_team, draw_at_ms=data.draw_at_ms or now_ms, now_ms=now_ms,
                    policy=state.policy, announced_by=principal.username, by_supervisor=principal.role == "supervisor",
                )  # fmt: skip
            except DrawError as e:
                raise ClientException(str(e)) from None
        return {"draw_id": draw_id, "seed_hash": seed_hash, "public_page": f"/public/draws/{draw_id}"}

    @get("/{draw_id:str}", sync_to_thread=True)
    def get_draw(self, state: State, draw_id: IdPath) -> dict[str, Any]:
        """A draw as the public sees it (the seed only once drawn)."""
        with _read(state) as con:
            view = public_view(con, draw_id)
        if view is None:
            raise NotFoundException(f"no draw {draw_id!r}")
        return view


class DisclosureController(Controller):
    """Decisions to disclose (行政执法公示) and case-file samples (案卷评查)."""

    path = "/api/v1"
    tags = ["jobs"]

    @post("/decisions", sync_to_thread=True, status_code=201, responses=answers(Conflict))
    def add_decision(self, state: State, data: JSONBody[DecisionIn], principal: CurrentPrincipal) -> dict[str, Any]:
        """Register a decision; its disclosure deadline is counted in working days."""
        _own_agency(principal, data.agency_id)
        with _write(state) as con:
            return record_decision(  # Conflict when the id is registered already
                con, decision_id=data.decision_id, agency_id=data.agency_id, kind=data.kind, decided_on=data.decided_on, case_no=data.case_no, credit_code=data.credit_code
            )

    @post("/decisions/{decision_id:str}/disclosure", sync_to_thread=True, status_code=200)
    def disclose(self, state: State, decision_id: IdPath, data: JSONBody[DisclosureIn], principal: CurrentPrincipal) -> dict[str, str]:
        """Record the disclosure of a decision."""
        principal.require("supervisor", "agency_admin")
        with _write(state) as con:
            agency_id = decision_agency(con, decision_id)
            if agency_id is not None:
                _own_agency(principal, agency_id)
            try:
                return {"decision_id": decision_id, "status": record_disclosure(con, decision_id, data.disclosed_on)}
            except DisclosureError as e:
                raise NotFoundException(str(e)) from None

    @get("/disclosure/rates", sync_to_thread=True)
    def rates(self, state: State, principal: CurrentPrincipal) -> list[dict[str, Any]]:
        """On-time disclosure rate per agency (supervisors)."""
        principal.require("supervisor")
        with _read(state) as con:
            return on_time_rates(con)

    @get("/samples", sync_to_thread=True)
    def samples(self, state: State, principal: CurrentPrincipal) -> list[dict[str, Any]]:
        """Case-file samples with their review progress and pass rate (supervisors)."""
        principal.require("supervisor")
        with _read(state) as con:
            return pass_rates(con)

    @post("/samples/{sample_id:str}/reviews", sync_to_thread=True, status_code=200)
    def review(self, state: State, sample_id: IdPath, data: JSONBody[ReviewIn], principal: CurrentPrincipal) -> dict[str, str]:
        """Record the review of a sampled case file (supervisors)."""
        principal.require("supervisor")
        with _write(state) as con:
            try:
                record_review(con, sample_id, data.decision_id, data.result, data.reviewer, data.notes, int(time.time() * 1000))
            except DisclosureError as e:
                raise NotFoundException(str(e)) from None
        return {"sample_id": sample_id, "decision_id": data.decision_id, "result": data.result}


def _when(ms: int | None) -> str:
    return "–" if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


ORDER_RULE_ZH = "排序规则：每个候选按 SHA-256(种子字节 + “:” + 编号) 升序排列，任何人可据公布的候选名单复算。"
ORDER_RULE_EN = "Order: each candidate by SHA-256(seed bytes + ':' + id), ascending; anyone can recompute it from the published candidates."
_STYLE = "<style>body{font-family:system-ui,'PingFang SC','Noto Sans CJK SC',sans-serif;margin:16px;color:#1d2733}td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}</style>"


@get("/jobs", media_type=MediaType.HTML, sync_to_thread=True, include_in_schema=False)
def jobs_page(state: State, principal: CurrentPrincipal, lang: Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")] = "zh") -> str:
    """The status page of the scheduled jobs (supervisors)."""
    principal.require("supervisor")
    zh = lang == "zh"
    head = ["任务", "计划", "上次运行", "结果", "下次运行"] if zh else ["Job", "Schedule", "Last run", "Outcome", "Next run"]
    rows = "".join(
        f"<tr><td>{html.escape(j['name_zh'] if zh else j['name_en'])}</td><td><code>{html.escape(j['schedule'])}</code></td><td>{_when(j['last_run_ms'])}</td>"
        f"<td>{html.escape(j['last_outcome'] or '–')} <small>{html.escape((j['last_detail'] or '')[:120])}</small></td><td>{_when(j['next_run_ms'])}</td></tr>"
        for j in job_status(state)
    )
    title = "定时任务" if zh else "Scheduled jobs"
    return f"<!doctype html><html lang=\"{'zh-CN' if zh else 'en'}\"><meta charset=utf-8><title>{title}</title>{_STYLE}<h2>{title}</h2><p><a href=\"?lang={'en' if zh else 'zh'}\">{'English' if zh else '中文'}</a></p><table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{rows}</table></html>"


@get("/public/draws/{draw_id:str}", media_type=MediaType.HTML, sync_to_thread=True, include_in_schema=False)
def public_draw_page(state: State, draw_id: IdPath, lang: Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")] = "zh") -> str:
    """The public page of a draw (双随机、一公开): commitment, seed and result, for anyone to check."""
    with _read(state) as con:
        view = public_view(con, draw_id)
        names = stored_draws.draw_target_names(con, draw_id)
    if view is None:
        raise NotFoundException(f"no draw {draw_id!r}")
    zh = lang == "zh"
    t = (lambda a, b: a if zh else b)  # noqa: E731 - a tiny translation helper
    result = view["result"]
    teams = "".join(
        f"<tr><td>{html.escape(team['credit_code'])}</td><td>{html.escape(names.get(team['credit_code'], ''))}</td><td>{html.escape('、'.join(team['officers']))}</td></tr>"
        for team in (result or {}).get("teams", [])
    )
    body = (
        f"<h2>{t('双随机抽查结果公示', 'Random inspection draw')}：{html.escape(view['title'])}</h2>"
        f"<p>{t('抽查编号', 'Draw')} <code>{html.escape(draw_id)}</code> · {t('执法机关', 'Agency')} {html.escape(view['agency_id'])} · {t('领域', 'Field')} {html.escape(view['field'])}</p>"
        f"<p>{t('种子承诺（SHA-256，抽取前公布）', 'Seed commitment (SHA-256, published before the draw)')}：<code>{view['seed_hash']}</code> · {_when(view['committed_ms'])}</p>"
    )
    if view["status"] != "drawn":
        body += f"<p>{t('将于', 'To be drawn at')} {_when(view['draw_at_ms'])} {t('抽取。', '.')}</p>"
    else:
        body += (
            f"<p>{t('种子', 'Seed')}：<code>{view['seed']}</code> · {t('抽取时间', 'Drawn at')} {_when(view['drawn_ms'])}</p>"
            f"<p>{ORDER_RULE_ZH if zh else ORDER_RULE_EN}"
            f" {t('候选企业', 'Eligible enterprises')} {len(result['eligible_enterprises'])}，{t('候选执法人员', 'eligible officers')} {len(result['eligible_officers'])}。</p>"
            f"<table><tr><th>{t('统一社会信用代码', 'Credit code')}</th><th>{t('企业', 'Enterprise')}</th><th>{t('执法人员', 'Officers')}</th></tr>{teams}</table>"
        )
    return f"<!doctype html><html lang=\"{'zh-CN' if zh else 'en'}\"><meta charset=utf-8><title>{t('双随机公示', 'Draw')}</title>{_STYLE}{body}</html>"
