"""Case files for review (案卷评查): the monthly sample (server/jobs/disclosure.py ``sample_case_files``) draws from the
decisions registered, which the cases' decisions are; a supervisor scores a sampled case file item by item
(forms.FILE_CHECKLIST, 100 points, 80 to pass, and no item at nought); the score is a record in the evidence log, and a
failing case file opens a supervision finding (source ``case_review``) at once.

Re-scoring: a case file may be scored again (a correction) only while no finding opened from it is open. Once its
failure opened a finding, the score stands until the finding is closed by its own workflow (rectification, the
supervisor's acceptance): a later pass must not leave an open finding that says "failed" beside a file that says
"passed", nor close the finding silently. After the finding is closed, a new score is recorded (and a new failure
opens a new finding)."""

from __future__ import annotations

from server.cases.forms import FILE_CHECKLIST, FILE_PASS_SCORE, FileScoreIn, FileScoreView
from server.console.auth import Principal
from server.errors import Conflict, Invalid, NotFound
from server.evidence.records import append_record
from server.jobs.disclosure import record_review
from server.storage import case_steps as steps
from server.storage import supervision as registers
from server.storage.engine import Tx
from server.supervision import workflow as supervision
from server.supervision.forms import FindingIn


def score(tx: Tx, sample_id: str, decision_id: str, data: FileScoreIn, principal: Principal, now_ms: int) -> FileScoreView:
    """Score one sampled case file (supervisors)."""
    missing = [k for k in FILE_CHECKLIST if k not in data.scores]
    if missing:
        raise Invalid(f"评查须逐项打分，缺少：{', '.join(missing)} / every item is scored, missing {', '.join(missing)}")
    over = [k for k, v in data.scores.items() if v > FILE_CHECKLIST[k]]
    if over:
        raise Invalid(f"评分超过该项满分：{', '.join(over)} / a score above the item's points: {', '.join(over)}")
    total = sum(data.scores.values())
    passed = total >= FILE_PASS_SCORE and all(data.scores.values())
    result = "pass" if passed else "fail"
    low = [k for k, v in data.scores.items() if v < FILE_CHECKLIST[k] * 0.6]
    notes = f"{total}/100" + (f"；{data.notes}" if data.notes else "")
    if not any(s == sample_id for s, _ in steps.sampled(tx, decision_id)):
        raise NotFound(f"案卷 {decision_id} 不在抽样 {sample_id} 中 / case file {decision_id} is not in sample {sample_id}")
    tx.lock(f"fe:case-file:{sample_id}/{decision_id}")  # two scores at once take turns: one finding, not two
    open_finding = registers.open_finding_of(tx, "case_review", f"{sample_id}/{decision_id}")
    if open_finding is not None:
        raise Conflict(
            f"该案卷评查未通过已立监督事项 {open_finding}，须按监督流程办结后方可重新评查 / the file's failed score opened finding "
            f"{open_finding}: it is closed by its own workflow before the file is scored again"
        )
    record_review(tx, sample_id, decision_id, result, principal.username, notes, now_ms)
    append_record(
        tx, kind="case_file.scored", subject=f"sample:{sample_id}", actor=principal.username,
        content={"decision_id": decision_id, "scores": dict(data.scores), "total": total, "result": result, "notes": data.notes}, now_ms=now_ms,
    )  # fmt: skip
    finding_id = None
    if not passed:
        agency = registers.failed_review_agency(tx, sample_id, decision_id)
        if agency is not None:
            ref = f"{sample_id}/{decision_id}"
            finding_id = registers.open_finding_of(tx, "case_review", ref)
            if finding_id is None:
                reason = f"案卷评查未通过：{decision_id}（{total} 分" + (f"，{'、'.join(low)} 失分较多" if low else "") + "）"
                finding_id = supervision.open_finding(tx, FindingIn(agency_id=agency, reason=reason, source="case_review", source_ref=ref), principal, now_ms).finding_id
    return FileScoreView(sample_id=sample_id, decision_id=decision_id, total=total, result=result, finding_id=finding_id)
