"""The officer's door code (亮码检查): ``POST /api/v1/inspections/{id}/badge`` and the public ``/check/<code>`` (issue 16)."""

from __future__ import annotations

#: This module's routes (server/app.py).
ROUTES: list[object] = []
