"""The HTTP API over the seeded registers on each backend in turn (for the modules whose every request path is on
the storage seam; tests/server/conftest.py's ``api`` is SQLite-only until all are)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.settings import ServerSettings
from tests.server.conftest import Api


def settings(db: str, key_dir: Path) -> ServerSettings:
    """The API over ``db`` (a path or a URL; key files in ``key_dir``), without MQTT or jobs."""
    return ServerSettings(db_path=db, key_dir=key_dir, mqtt_enabled=False, jobs_enabled=False)


@pytest.fixture
def api(seeded_url: str, tmp_path: Path) -> Iterator[Api]:
    """The HTTP API over ``seeded_url``, signed in as the supervisor."""
    with TestClient(create_app(settings(seeded_url, tmp_path))) as c:
        yield Api(c)
