"""Which database backends the backend-parametrised tests run on."""

from __future__ import annotations

import os

#: SQLite and PostgreSQL by default; FE_TEST_BACKENDS=sqlite runs the SQLite half only (e.g. without PostgreSQL).
BACKENDS = [b for b in os.environ.get("FE_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
