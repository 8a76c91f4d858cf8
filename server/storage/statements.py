"""Statements of the storage package: one SQL text in the subset SQLite and PostgreSQL share, with named parameters
(``:name``), rewritten once for psycopg (``%(name)s``); list parameters expand in place (``IN (:ids)``)."""

from __future__ import annotations

import enum
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


_STRING_OR_PARAM = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|(?<![:\w]):([A-Za-z_]\w*)|%")


def _to_pyformat(text: str) -> str:
    """``:name`` -> ``%(name)s`` and ``%`` -> ``%%`` outside quoted strings and identifiers (``::`` casts stay)."""

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if m.group(1):
            return f"%({m.group(1)})s"
        if token == "%":
            return "%%"
        return token.replace("%", "%%") if token[0] in "'\"" else token

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


def _expand(text: str, params: Mapping[str, Any], backend: Backend) -> tuple[str, Mapping[str, Any]]:
    """Expand each list-valued parameter ``:ids`` into ``:ids__0, :ids__1, ...`` (an empty one into NULL, which
    matches nothing in ``IN (...)``)."""
    out = dict(params)
    for name, value in params.items():
        if isinstance(value, _EXPANDABLE):
            values = list(value)
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
