"""Enterprises' ratings of the inspections they received (issue 14 item 8): one per inspection."""

from __future__ import annotations

from sqlalchemy import Column, Index, Table

from server.storage.columns import Int, Str, metadata

ratings = Table(
    "ratings", metadata,
    Column("inspection_id", Str, primary_key=True),
    Column("credit_code", Str, nullable=False),
    Column("lead_agency_id", Str, nullable=False),
    Column("score", Int, nullable=False),  # 1..5
    Column("comment", Str, nullable=False),
    Column("rated_by", Str, nullable=False),
    Column("rated_ms", Int, nullable=False),
    Index("ratings_by_agency", "lead_agency_id", "rated_ms"),
)
