"""Tables of issue 16 (migration 0010_console): how each alert was handled, acknowledged and assigned, by whom and when.

One row per alert that anybody handled (an alert no one touched has none); ``alerts`` itself stays as the rules wrote it.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Table

from server.storage.columns import Int, Str, metadata

alert_handling = Table(
    "alert_handling", metadata,
    Column("alert_id", Int, primary_key=True, autoincrement=False),
    Column("acknowledged_by", Str),
    Column("acknowledged_ms", Int),
    Column("assigned_to", Str),
    Column("assigned_by", Str),
    Column("assigned_ms", Int),
    Index("alert_handling_by_assignee", "assigned_to"),
)
