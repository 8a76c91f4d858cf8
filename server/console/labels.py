"""Every id a person may see, with its Chinese and English label, from one place (issue 16 item 1).

A module that owns a set of ids (a register's kinds, a state machine's states) registers its labels here under a group
name; pages, PDFs and error messages ask ``label(group, value, lang)``. An id with no label is shown as a neutral
placeholder, never raw: tests read the registered groups to check that no raw id reaches a page."""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]
#: (Chinese, English)
Label = tuple[str, str]

_GROUPS: dict[str, dict[str, Label]] = {}


def register(group: str, labels: dict[str, Label]) -> None:
    """Add labels to a group (a later registration of the same id replaces the earlier one)."""
    _GROUPS.setdefault(group, {}).update(labels)


def label(group: str, value: str | None, lang: Lang = "zh") -> str:
    """The label of ``value`` in ``group`` in the language asked, or a placeholder for an unknown id."""
    pair = _GROUPS.get(group, {}).get(value or "")
    if pair is None:
        return "（未知）" if lang == "zh" else "(unknown)"
    return pair[0] if lang == "zh" else pair[1]


def groups() -> dict[str, dict[str, Label]]:
    """Every registered group (for tests and for the pages' scripts)."""
    return {g: dict(v) for g, v in _GROUPS.items()}
