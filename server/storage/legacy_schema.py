"""The SQLite schema as the server built it before the storage seam: an ordered list of scripts (legacy_sql/NN.sql),
FROZEN since the Alembic baseline (migrations/versions/0001_baseline.py builds what they build). They only finish a
file made by an older server before it is stamped (migrate.py ``migrate_sqlite``); its ``PRAGMA user_version`` says
how many ran. A schema change is a new Alembic revision, never a script here."""

from __future__ import annotations

from pathlib import Path

_FOLDER = Path(__file__).with_name("legacy_sql")

MIGRATIONS: list[str] = [p.read_text(encoding="utf-8") for p in sorted(_FOLDER.glob("[0-9][0-9].sql"))]
