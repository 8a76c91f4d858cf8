"""Statements of the storage package: one SQL text in the subset SQLite and PostgreSQL share, with named parameters
(``:name``), rewritten once for psycopg (``%(name)s``); list parameters expand in place (``IN (:ids)``)."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class Backend(enum.StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgresql"


#: URL schemes that name a PostgreSQL database; anything else is a path to a SQLite file.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def backend_of(db: str | Path) -> Backend:
    """Which backend ``db`` (a path or a URL) names."""
    return Backend.POSTGRES if str(db).startswith(POSTGRES_SCHEMES) else Backend.SQLITE


_STRING_OR_PARAM = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|(?<![:\w]):([A-Za-z_]\w*)|%", re.S)


def _to_pyformat(text: str) -> str:
    """``:name`` -> ``%(name)s`` and ``%`` -> ``%%`` outside quoted strings, identifiers and comments (``::`` casts
    stay); a ``%`` inside them is doubled too, since psycopg reads every ``%`` of the text."""

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if m.group(1):
            return f"%({m.group(1)})s"
        if token == "%":
            return "%%"
        return token.replace("%", "%%") if token[0] in "'\"-/" else token  # literals, identifiers, comments

    return _STRING_OR_PARAM.sub(sub, text)


class Statement:
    """One SQL text with named parameters; ``postgresql=`` gives another text for the rare query whose portable
    form would be much slower or impossible (each such case says why beside it)."""

    __slots__ = ("text", "_postgres_text", "_postgres")

    def __init__(self, text: str, *, postgresql: str | None = None) -> None:
        self.text = text.strip()
        self._postgres_text = postgresql.strip() if postgresql else None
        self._postgres: str | None = None

    def for_backend(self, backend: Backend) -> str:
        if backend is Backend.SQLITE:
            return self.text
        if self._postgres is None:
            self._postgres = _to_pyformat(self._postgres_text or self.text)
        return self._postgres

    def __repr__(self) -> str:
        return f"sql({self.text!r})"


def sql(text: str, *, postgresql: str | None = None) -> Statement:
    """A statement of the storage package (module level, so each is parsed once)."""
    return Statement(text, postgresql=postgresql)


_EXPANDABLE = (list, tuple, set, frozenset)
#: The same, as exact types: ``Tx.run`` checks every parameter's type against it in one C-level pass
#: (``isdisjoint(map(type, ...))``), a tenth of the per-statement cost of a Python-level isinstance loop.
_EXPANDABLE_TYPES = frozenset(_EXPANDABLE)


#: Past this many values an ``IN (:ids)`` list is bound as one value (an array, or JSON text on SQLite) instead of one
#: parameter each: PostgreSQL takes at most 65,535 parameters a statement and SQLite 32,766.
INLINE_LIST_MAX = 1000


def _expand(text: str, params: Mapping[str, Any], backend: Backend) -> tuple[str, Mapping[str, Any]]:
    """Expand each list-valued parameter ``:ids`` into ``:ids__0, :ids__1, ...`` (an empty one into NULL, which
    matches nothing in ``IN (...)``); a long list written ``IN (:ids)`` is bound whole instead (INLINE_LIST_MAX)."""
    out = dict(params)
    for name, value in params.items():
        if isinstance(value, _EXPANDABLE):
            values = list(value)
            if len(values) > INLINE_LIST_MAX:
                whole = _bind_whole(text, name, values, backend)
                if whole is not None:
                    text, out[name] = whole
                    continue
            del out[name]
            names = [f"{name}__{i}" for i in range(len(values))]
            out.update(zip(names, values, strict=True))
            if backend is Backend.SQLITE:
                placeholders = ", ".join(f":{n}" for n in names) or "NULL"
                text = re.sub(rf"(?<![:\w]):{name}\b", placeholders, text)
            else:
                placeholders = ", ".join(f"%({n})s" for n in names) or "NULL"
                text = text.replace(f"%({name})s", placeholders)
    return text, out


def _bind_whole(text: str, name: str, values: list[Any], backend: Backend) -> tuple[str, Any] | None:
    """``x IN (:name)`` as ``x = ANY(:name)`` with an array (PostgreSQL) or ``x IN (SELECT value FROM json_each(:name))``
    with JSON text (SQLite); None where the parameter is not written that way or a value has no JSON form."""
    if backend is Backend.POSTGRES:
        pattern = re.compile(rf"(?i)\b(NOT\s+)?IN\s*\(\s*%\({name}\)s\s*\)")
        if not pattern.search(text):
            return None
        return pattern.sub(lambda m: f"<> ALL(%({name})s)" if m.group(1) else f"= ANY(%({name})s)", text), values
    pattern = re.compile(rf"(?i)\bIN\s*\(\s*:{name}\s*\)")
    if not pattern.search(text) or not all(v is None or isinstance(v, (str, int, float)) for v in values):
        return None
    return pattern.sub(f"IN (SELECT value FROM json_each(:{name}))", text), json.dumps(values)
