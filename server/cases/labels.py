"""The words of cases on a page (Chinese, English), registered in server/console/labels.py. The alert kinds cases raise
(major_without_review, review_disagreement, case_transfer, review_overdue) are in server/rules/alerts.py's KINDS with
every other kind."""

from __future__ import annotations

from server.cases.policy import MEASURES
from server.console import labels

STATES = {
    "filed": ("立案", "filed"), "investigating": ("调查取证", "investigating"), "review": ("法制审核", "legal review"),
    "decided": ("决定", "decided"), "served": ("送达", "served"), "executed": ("执行", "executed"), "closed": ("结案", "closed"),
    "archived": ("归档", "archived"), "transferring": ("移送中", "being transferred"),
}  # fmt: skip
KINDS = {
    "penalty": ("行政处罚", "administrative penalty"), "coercion": ("行政强制", "administrative coercion"),
    "permit": ("行政许可", "administrative permit"), "other": ("其他", "other"),
}  # fmt: skip
REVIEW_STATUS = {
    "pending": ("待审核", "awaiting review"), "passed": ("审核通过", "passed"), "returned": ("退回补正", "returned for correction"),
    "escalated": ("意见分歧，报机关负责人", "disagreement, with the agency head"),
}  # fmt: skip
CHECKLIST = {
    "lawful_body": ("执法主体是否合法", "lawful enforcing body"), "qualified_officers": ("执法人员是否具备执法资格", "qualified officers"),
    "lawful_procedure": ("执法程序是否合法", "lawful procedure"), "facts_evidence": ("案件事实是否清楚，证据是否合法充分", "facts clear, evidence sufficient"),
    "law_discretion": ("适用法律是否准确，裁量基准运用是否适当", "law applied correctly, discretion proper"),
    "within_powers": ("是否超越执法机关法定权限", "within the body's powers"), "documents_complete": ("执法文书是否完备、规范", "documents complete"),
    "crime_transfer": ("是否涉嫌犯罪需要移送司法机关", "no suspected crime to refer"),
}  # fmt: skip
FILE_ITEMS = {
    "filing": ("立案", "filing"), "evidence": ("调查取证", "evidence"), "procedure": ("执法程序", "procedure"),
    "law_applied": ("适用法律与裁量", "law applied"), "documents": ("执法文书", "documents"), "archiving": ("立卷归档", "archiving"),
}  # fmt: skip
TRANSFER_KINDS = {"transfer": ("案件移送", "transfer to another agency"), "referral": ("移送司法机关（行刑衔接）", "referral to the judicial organs")}
TRANSFER_STATUS = {"sent": ("待答复", "awaiting an answer"), "accepted": ("已接收", "accepted"), "returned": ("已退回", "returned")}
EVIDENCE_KINDS = {"video": ("录像", "video"), "audio": ("录音", "audio"), "photo": ("照片", "photo"), "document": ("文书", "document")}
DISCLOSURE = {
    "pending": ("待公示", "to disclose"), "disclosed_on_time": ("已按时公示", "disclosed on time"),
    "disclosed_late": ("逾期公示", "disclosed late"), "missed": ("逾期未公示", "missed"),
}  # fmt: skip

for group, table in (
    ("case_state", STATES), ("case_kind", KINDS), ("case_measure", MEASURES), ("case_review_status", REVIEW_STATUS), ("review_item", CHECKLIST),
    ("case_file_item", FILE_ITEMS), ("transfer_kind", TRANSFER_KINDS), ("transfer_status", TRANSFER_STATUS), ("evidence_kind", EVIDENCE_KINDS),
    ("disclosure_status", DISCLOSURE),
):
    labels.register(group, table)


def word(group: str, value: str | None, lang: str) -> str:
    return labels.label(group, value, "en" if lang == "en" else "zh")
