"""Process roles (``fe-server run --role``): what each serves and runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from server.app import app_from_env, create_app, settings_for_workers, SETTINGS_ENV
from server.cli import _settings
from server.cli_parser import build_parser
from server.settings import Role, ServerSettings
from protocol.config import ConfigError


def _settings_of(tmp_path: Path, role: Role) -> ServerSettings:
    # mqtt and jobs stay enabled: the role alone must keep the ingest and the scheduler out of an API process.
    return ServerSettings(db_path=tmp_path / "s.db", role=role, mqtt_host="127.0.0.1", mqtt_port=1)


def test_the_api_role_runs_neither_ingest_nor_scheduler(tmp_path: Path) -> None:
    with TestClient(create_app(_settings_of(tmp_path, Role.API))) as c:
        assert c.app.state.ingest is None and c.app.state.scheduler is None
        assert c.get("/health").json()["ingest_writer"] == "disabled"
        assert c.get("/api/v1/overview").status_code == 401  # there, and guarded
        assert c.get("/login").status_code == 200


def test_other_roles_serve_operations_only(tmp_path: Path) -> None:
    app = create_app(ServerSettings(db_path=tmp_path / "s.db", role=Role.INGEST, mqtt_enabled=False))
    with TestClient(app) as c:
        assert c.get("/ping").json() == {"ok": True}
        assert c.get("/metrics").status_code == 200
        assert c.get("/api/v1/overview").status_code == 404
        assert c.get("/login").status_code == 404


def test_workers_get_the_settings_through_their_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServerSettings(db_path=tmp_path / "s.db", role=Role.API, http_port=18080)
    monkeypatch.setenv(SETTINGS_ENV, settings_for_workers(settings))
    assert app_from_env().state.settings == settings


def _run_args(*argv: str) -> ServerSettings:
    return _settings(build_parser().parse_args(["run", *argv]))


def test_run_options_make_settings_and_refuse_what_cannot_work(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    s = _run_args("--db", db)
    assert (s.role, s.mqtt_username, s.mqtt_client_id, s.mqtt_share_group) == (Role.ALL, "fe-server", "fe-server", None)
    s = _run_args("--db", db, "--role", "ingest", "--ingest-worker", "2")
    assert (s.role, s.mqtt_username, s.mqtt_client_id, s.mqtt_share_group) == (Role.INGEST, "fe-ingest-2", "fe-ingest-2", "fe-ingest")
    assert _run_args("--db", db, "--role", "api", "--workers", "4").role is Role.API
    for workers in ("0", "-1", "100000"):
        with pytest.raises(ConfigError, match="give 1 to 64"):
            _run_args("--db", db, "--role", "api", "--workers", workers)
    with pytest.raises(ConfigError, match="api role only"):
        _run_args("--db", db, "--workers", "2")
    with pytest.raises(ConfigError, match="--role ingest"):
        _run_args("--db", db, "--ingest-worker", "1")
    with pytest.raises(SystemExit):
        _run_args("--db", db, "--role", "everything")
