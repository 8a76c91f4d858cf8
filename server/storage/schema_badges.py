"""Tables of issue 16 item 3, the officer's door code (亮码检查, migration 0011_badges): every code issued, so that a
code superseded by a newer one, or one whose inspection ended, is known as replayed (docs/badge.md)."""

from __future__ import annotations

from sqlalchemy import Column, Index, Table

from server.storage.columns import Int, Str, metadata

badges = Table(
    "badges", metadata,
    Column("badge_id", Str, primary_key=True),  # 16 base32 characters, random (80 bits)
    Column("inspection_id", Str, nullable=False),
    Column("officer_id", Str, nullable=False),
    Column("issued_ms", Int, nullable=False),
    Column("expires_ms", Int, nullable=False),
    Column("superseded_ms", Int),  # the officer asked for a newer code for the same inspection
    Column("first_checked_ms", Int),  # the first time an enterprise opened the code's page
    Index("badges_of_part", "inspection_id", "officer_id", "issued_ms"),
    Index("badges_by_officer", "officer_id", "issued_ms"),
)  # fmt: skip
