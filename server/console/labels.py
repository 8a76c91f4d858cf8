"""Every id a person may see, with its Chinese and English label, from one place (issue 16 item 1).

A module that owns a set of ids (a register's kinds, a state machine's states) registers its labels here under a group
name; pages, PDFs and error messages ask ``label(group, value, lang)``. An id with no label is shown as a neutral
placeholder, never raw: tests read the registered groups to check that no raw id reaches a page.

The ids the console itself shows and no other module owns (roles, device kinds, inspection states and results, scan
outcomes, the jobs' outcomes, the dashboard's periods, administrative divisions) are registered below. Agencies' and
fields' names are the registers' (the database): :func:`register_names` reads them for a page. Errors of the API read
"中文 / english": :func:`localized` keeps the part for the page's language.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from server.storage.engine import Tx

Lang = Literal["zh", "en"]
#: (Chinese, English)
Label = tuple[str, str]

_GROUPS: dict[str, dict[str, Label]] = {}
#: What an id with no label reads as.
UNKNOWN: Label = ("（未知）", "(unknown)")


def register(group: str, labels: dict[str, Label]) -> None:
    """Add labels to a group (a later registration of the same id replaces the earlier one)."""
    _GROUPS.setdefault(group, {}).update(labels)


def label(group: str, value: str | None, lang: Lang | str = "zh") -> str:
    """The label of ``value`` in ``group`` in the language asked, or a placeholder for an unknown id."""
    pair = _GROUPS.get(group, {}).get(value or "", UNKNOWN)
    return pair[0] if lang == "zh" else pair[1]


def groups() -> dict[str, dict[str, Label]]:
    """Every registered group (for tests and for the pages' scripts)."""
    return {g: dict(v) for g, v in _GROUPS.items()}


def table(lang: Lang | str, *names: str) -> dict[str, dict[str, str]]:
    """The groups named (every group when none is), each as {id: label in ``lang``}: what a page's script reads
    (``L(group, id)`` in console.js) from its ``labels`` JSON block."""
    i = 0 if lang == "zh" else 1
    return {g: {k: v[i] for k, v in _GROUPS.get(g, {}).items()} for g in (names or tuple(_GROUPS))}


def localized(message: str, lang: Lang | str) -> str:
    """The part of an API message "中文 / english" for ``lang`` (a message with one language only is kept whole)."""
    zh, sep, en = message.partition(" / ")
    if not sep:
        return message
    return zh.strip() if lang == "zh" else en.strip()


def register_names(tx: Tx, lang: Lang | str) -> dict[str, dict[str, str]]:
    """The registers' names of every agency and field in ``lang`` ({"agency": {id: name}, "field": {id: name}}); an
    English name left empty in the register falls back to the Chinese one, never to the id."""
    from server.storage.console import agency_and_field_names

    out: dict[str, dict[str, str]] = {"agency": {}, "field": {}}
    for group, key, zh, en in agency_and_field_names(tx):
        out[group][key] = zh if lang == "zh" or not en else en
    return out


register("role", {
    "officer": ("执法人员", "Officer"), "agency_admin": ("机关管理员", "Agency administrator"), "supervisor": ("监督人员", "Supervisor"),
    "enterprise": ("企业", "Enterprise"), "monitor": ("行政执法监督员", "Outside supervisor"),
})  # fmt: skip
register("device_kind", {"body_recorder": ("执法记录仪", "Body-worn recorder"), "qr_terminal": ("扫码终端", "QR terminal"), "phone": ("执法手机", "Officer's phone")})
register("inspection_state", {"open": ("进行中", "Under way"), "ended": ("已结束", "Ended")})
register("result", {
    "no_violation": ("未发现问题", "no violation"), "rectification_ordered": ("责令整改", "rectification ordered"), "case_opened": ("立案", "case opened"),
    "referred": ("移送", "referred"), "not_completed": ("未完成", "not completed"),
})  # fmt: skip
register("scan_outcome", {"allowed": ("准予检查", "allowed"), "join": ("加入检查", "joined"), "repeat": ("重复检查", "repeat"), "refused": ("不予检查", "refused")})
register("severity", {"critical": ("严重", "Critical"), "warning": ("警告", "Warning"), "info": ("提示", "Notice")})
register("job_outcome", {"ok": ("已完成", "Done"), "error": ("失败", "Failed"), "running": ("正在运行", "Running"), "skipped": ("已由其他服务器运行", "run by another server")})
register("alert_state", {"": ("全部", "All"), "new": ("未确认", "Not acknowledged"), "acknowledged": ("已确认", "Acknowledged"), "mine": ("分派给我", "Assigned to me")})
register("period", {
    "today": ("今天", "Today"), "7d": ("近 7 天", "7 days"), "30d": ("近 30 天", "30 days"), "month": ("按月", "A month"),
    "custom": ("自定义", "Custom"),
})  # fmt: skip
#: Administrative divisions (GB/T 2260) the demo and the pilots use; any other code reads "行政区划 <code>".
register("division", {
    "110101": ("东城区", "Dongcheng"), "110102": ("西城区", "Xicheng"), "110105": ("朝阳区", "Chaoyang"), "110106": ("丰台区", "Fengtai"),
    "110107": ("石景山区", "Shijingshan"), "110108": ("海淀区", "Haidian"), "110109": ("门头沟区", "Mentougou"), "110111": ("房山区", "Fangshan"),
    "110112": ("通州区", "Tongzhou"), "110113": ("顺义区", "Shunyi"), "110114": ("昌平区", "Changping"), "110115": ("大兴区", "Daxing"),
    "110116": ("怀柔区", "Huairou"), "110117": ("平谷区", "Pinggu"), "110118": ("密云区", "Miyun"), "110119": ("延庆区", "Yanqing"),
    "120116": ("滨海新区", "Binhai New Area"),
})  # fmt: skip


def division(code: str | None, lang: Lang | str) -> str:
    """An administrative division's name; an unlisted code as "行政区划 110000" (a public number, not an internal id)."""
    if code and code in _GROUPS["division"]:
        return label("division", code, lang)
    if not code:
        return "未填写行政区划" if lang == "zh" else "No division given"
    return f"行政区划 {code}" if lang == "zh" else f"Division {code}"
