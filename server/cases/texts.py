"""The words of the case pages (Chinese first, English with ?lang=en): each word with its two languages side by side,
so that neither can lack one."""

from __future__ import annotations

#: {key: (Chinese, English)}
WORDS: dict[str, tuple[str, str]] = {
    "cases": ("执法案件", "Enforcement cases"), "case": ("案件", "Case"), "number": ("案号", "Number"), "case_title": ("案由", "Matter"), "kind": ("案件类型", "Kind"),
    "agency": ("办案机关", "Agency"), "enterprise": ("企业", "Enterprise"), "state": ("状态", "State"), "deadline": ("办案期限", "Decide by"), "opened": ("立案时间", "Opened"),
    "none": ("暂无", "none"), "new_case": ("立案", "Open a case"), "field": ("执法领域（由检查立案时可不选）", "Field (not needed from an inspection)"),
    "credit_code": ("统一社会信用代码（可不填）", "Credit code (optional)"), "inspection": ("由检查立案（检查结果为立案）", "From an inspection (result: case opened)"),
    "by_hand": ("手工立案（不由检查）", "by hand (no inspection)"), "officers": ("承办人员（至少两名持证人员）", "Officers (at least two with credentials)"), "open": ("立案", "Open"),
    "parties": ("当事人", "Parties"), "party_enterprise": ("企业", "enterprise"), "party_individual": ("个人", "individual"), "evidence": ("证据", "Evidence"),
    "hash": ("SHA-256", "SHA-256"), "log": ("证据日志位置", "Evidence log index"), "reviews": ("法制审核", "Legal review"), "review_queue": ("待审核事项", "Reviews to do"),
    "proposal": ("承办意见", "Handling officers' proposal"), "opinion": ("审核意见", "Reviewer's opinion"), "head_note": ("机关负责人意见", "Agency head's resolution"),
    "decision": ("决定", "Decision"), "summary": ("决定内容", "Decision"), "fine": ("罚款（元）", "Fine (yuan)"), "measures": ("处理措施", "Measures"),
    "hearing": ("经过听证", "Hearing held"), "major": ("重大执法决定（清单事项）", "Major decision (listed)"), "decided_on": ("决定日期", "Decided on"),
    "disclosure_deadline": ("公示期限", "Disclose by"), "disclosure": ("公示情况", "Disclosure"), "sampled": ("已抽入案卷评查", "Drawn for case-file review"),
    "transfers": ("移送", "Transfers"), "steps": ("办案记录", "Steps"), "when": ("时间", "When"), "who": ("经办", "By"), "actions": ("办理", "Actions"),
    "investigate": ("开始调查取证", "Start the investigation"), "submit_review": ("提请法制审核", "Submit for legal review"), "decide": ("作出决定", "Issue the decision"),
    "publish": ("公示决定", "Disclose the decision"), "transfer": ("移送其他机关", "Transfer to another agency"),
    "refer": ("移送司法机关（涉嫌犯罪）", "Refer to the judicial organs (suspected crime)"), "to_agency": ("接收机关", "Receiving agency"), "to_body": ("接收的司法机关", "Judicial organ"),
    "reason": ("理由", "Reasons"), "send": ("提交", "Submit"), "document": ("添加文书", "Add a document"), "doc_title": ("文书名称", "Document title"),
    "accept": ("接收案件", "Accept the case"), "return": ("退回", "Send back"), "accepted": ("接收", "Accept"),
    "referral_answer": ("登记司法机关答复", "Record the judicial organ's answer"), "review_item": ("审核事项", "Checklist item"), "ok": ("无问题", "Sound"), "note": ("说明", "Note"),
    "outcome": ("审核结论", "Outcome"), "passed": ("通过", "Passed"), "returned": ("退回补正", "Returned for correction"),
    "disagreement": ("意见分歧（报机关负责人）", "Disagreement (to the agency head)"), "resolve": ("机关负责人决定", "Agency head's resolution"), "to_state": ("转为", "Move to"),
    "crime": ("涉嫌犯罪", "suspected crime"), "valid": ("持证有效", "credential valid"), "invalid": ("证件无效", "credential invalid"),
    "public_title": ("行政执法公示", "Enforcement decisions disclosed"), "search": ("查询", "Search"), "query": ("企业名称或统一社会信用代码", "Enterprise name or credit code"),
    "all_agencies": ("全部机关", "All agencies"), "disclosed_on": ("公示日期", "Disclosed on"), "masked": ("依法对个人信息作了遮蔽处理。", "Personal data are masked as the law requires."),
    "overdue": ("已逾期", "overdue"), "files": ("案卷评查（抽样）", "Case files sampled for review"), "score": ("评分", "Score"), "file_pass": ("合格", "passed"),
    "file_fail": ("不合格", "failed"), "file_none": ("待评查", "to review"), "individual": ("当事人（个人，可不填）", "Individual party (optional)"),
    "id_no": ("身份证号（可不填）", "ID number (optional)"), "done": ("已完成：", "Done:"), "reviewer_only": ("您是本机关法制审核人员。", "You are a legal reviewer of your agency."),
    "integrity": ("完整性", "Integrity"), "step_opened": ("立案", "opened"), "step_investigating": ("调查取证", "investigation"),
    "step_review_submitted": ("提请法制审核", "submitted for review"), "step_review_passed": ("审核通过", "review passed"), "step_review_returned": ("审核退回", "review returned"),
    "step_review_escalated": ("意见分歧，报机关负责人", "disagreement, to the agency head"), "step_review_resolved_passed": ("负责人决定：通过", "head: passed"),
    "step_review_resolved_returned": ("负责人决定：退回", "head: returned"), "step_decided": ("作出决定", "decided"), "step_published": ("公示", "disclosed"),
    "step_served": ("送达", "served"), "step_executed": ("执行", "executed"), "step_closed": ("结案", "closed"), "step_archived": ("归档", "archived"),
    "step_document": ("添加文书", "document added"), "step_transfer_sent": ("移送其他机关", "transferred"), "step_transfer_accepted": ("接收移送", "transfer accepted"),
    "step_transfer_returned": ("退回移送", "transfer sent back"), "step_referral_sent": ("移送司法机关", "referred to the judicial organs"),
    "step_referral_accepted": ("司法机关立案", "judicial organ opened a case"), "step_referral_returned": ("司法机关不予立案", "judicial organ declined"),
    "step_review_overdue": ("法制审核逾期", "legal review overdue"), "step_other": ("其他", "other"), "evidence_kind": ("类别", "Kind"),
    "review_deadline": ("审核期限", "Review due by"), "reviewers": ("法制审核人员", "Legal reviewers"),
    "reviewer_share": ("本机关 %s 名法制审核人员，持证执法人员 %s 名。", "%s legal reviewers among %s officers with a valid credential."),
    "too_few": ("不足 %s%%，请增配。", "Fewer than %s %%: qualify more."), "revoke": ("取消资格", "Withdraw"), "officer": ("执法人员", "Officer"),
    "qualification": ("资格证号", "Qualification no."), "grant": ("认定为法制审核人员", "Qualify as a legal reviewer"), "system": ("系统", "system"),
}  # fmt: skip

TEXT: dict[str, dict[str, str]] = {lang: {k: pair[i] for k, pair in WORDS.items()} for i, lang in enumerate(("zh", "en"))}
