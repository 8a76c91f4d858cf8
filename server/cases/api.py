"""``/api/v1/cases``, ``/cases`` and ``/public/disclosure`` (issue 15)."""

from __future__ import annotations

#: This module's routes (server/app.py).
ROUTES: list[object] = []
