"""``create_app(settings)``: the Litestar app of one server process, by its role (server/plugins.py)."""

from __future__ import annotations

import base64
import logging
import os
import pickle
from pathlib import Path

from litestar import Litestar
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import State
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.di import Provide
from litestar.plugins import InitPluginProtocol
from litestar.template.config import TemplateConfig
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.exceptions import HTTPException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.static_files import create_static_files_router

from protocol.config import ConfigError, load_toml
from protocol.decision import Policy
from server import db
from server.cases import api as cases_api
from server.cases import policy as cases_policy
from server.console import api, auth_api, badge_api, dashboard_api, enterprise_api, evidence_api, exception_api, hotline_api, inspect_api, jobs_api, pages, ratings_api, scorecard_api, supervision_api, supervision_page, users_api
from server.errors import DomainError, bad_value_response, document_answers, error_response, http_error_response, too_deep_response
from server.console.apidocs import OfflineSwagger
from server.console.auth import provide_principal
from server.rules.codes import ensure_code_key
from server.console.headers import add_security_headers
from server.console.limits import MAX_REQUEST_BODY, refuse_nul_in_path, too_large_handler
from server.storage.failures import BAD_VALUE
from protocol.signing import SigningKey
from server.evidence.keys import load_or_create_server_key
from server.ingest.metrics import IngestMetrics
from server.plugins import IngestPlugin, SchedulerPlugin, StoragePlugin
from server.settings import ServerSettings
from server.supervision.scorecard import WeightsError, weights_from

log = logging.getLogger(__name__)

#: The console's scripts, styles and the API docs' start-up script (the CSP runs no inline script).
STATIC_DIR = Path(__file__).parent / "console" / "static"


#: What a process of any role serves: liveness, metrics, the load-measurement baseline.
OPERATIONS = [api.health, api.ping, api.metrics]


def api_routes() -> list[object]:
    """The API and the console (the api and all roles)."""
    return [
        auth_api.login,
        auth_api.logout,
        auth_api.me,
        users_api.UserController,
        users_api.users_page,
        *pages.ROUTES,
        create_static_files_router(path="/static", directories=[STATIC_DIR]),
        *dashboard_api.ROUTES,
        enterprise_api.enterprise_view,
        api.overview,
        api.DeviceController,
        api.EventController,
        api.RejectedController,
        inspect_api.ScanController,
        inspect_api.InspectionController,
        inspect_api.EnterpriseController,
        inspect_api.AlertController,
        exception_api.ExceptionBasisController,
        exception_api.ExceptionReviewController,
        *evidence_api.ROUTES,
        *cases_api.ROUTES,
        *badge_api.ROUTES,
        *supervision_api.ROUTES,
        *hotline_api.ROUTES,
        *ratings_api.ROUTES,
        supervision_page.supervision_page,
        *scorecard_api.ROUTES,
        jobs_api.JobController,
        jobs_api.DrawController,
        jobs_api.DisclosureController,
    ]


def prepare(settings: ServerSettings) -> SigningKey:
    """What a server needs before it serves: the database migrated, its signing key and the enterprise-code key
    (devices' snapshots carry it from the start); returns the server's key."""
    db.migrate(settings.db)
    key = load_or_create_server_key(settings.server_key_path)
    with db.writing(settings.db) as tx:
        ensure_code_key(tx, settings.key_base)
    return key


def create_app(settings: ServerSettings) -> Litestar:
    """Build the app of this process's role; the database is migrated here, the ingest and the scheduler run as
    plugins for the app's lifetime."""
    key = prepare(settings)
    metrics = IngestMetrics()
    policy = load_toml(settings.policy_file, Policy)
    try:  # the scorecard's weights name indicators the server knows (a wrong key stops the start, naming file and key)
        weights_from(policy.scorecard.weights, str(settings.policy_file))
    except WeightsError as e:
        raise ConfigError(str(e)) from None
    cases_policy.parse(policy.cases, str(settings.policy_file))  # [cases] (issue 15): a wrong key stops the start too
    role = settings.role
    plugins: list[InitPluginProtocol] = [StoragePlugin(settings)]
    if role.runs_ingest and settings.mqtt_enabled:
        plugins.append(IngestPlugin(settings, key, metrics, policy))
    if role.runs_scheduler and settings.jobs_enabled:
        plugins.append(SchedulerPlugin(settings))

    app = Litestar(
        route_handlers=[*OPERATIONS, *(api_routes() if role.serves_api else [])],
        state=State({"settings": settings, "metrics": metrics, "ingest": None, "scheduler": None, "server_public_key": key.public_hex, "server_key": key, "policy": policy}),
        plugins=plugins,
        dependencies={"principal": Provide(provide_principal)},  # async: no thread hop when a guard has read it
        request_max_body_size=MAX_REQUEST_BODY,
        openapi_config=OpenAPIConfig(title="Field-enforcement supervision API", version="1.0.0", path="/schema", render_plugins=[OfflineSwagger("/schema")]),
        response_cache_config=ResponseCacheConfig(),
        template_config=TemplateConfig(directory=Path(__file__).parent / "console" / "templates", engine=JinjaTemplateEngine),
        logging_config=LoggingConfig(log_exceptions="always", disable_stack_trace={400, 401, 403, 404, 405, 409, 413, 422, 429}),
        exception_handlers={
            DomainError: error_response,
            HTTPException: http_error_response,
            RequestEntityTooLarge: too_large_handler,
            RecursionError: too_deep_response,  # a deeply nested JSON body (msgspec's decoder): 400, not 500
            **{cls: bad_value_response for cls in BAD_VALUE},  # e.g. a NUL in a path parameter, on PostgreSQL
        },
        middleware=[refuse_nul_in_path],
        before_send=[add_security_headers],  # CSP, framing, nosniff, referrer: on every answer, 404s included
    )
    document_answers(app)  # every route's OpenAPI answers: 401/403/404/400/413 as its signature implies
    return app


#: Carries the settings to each HTTP worker process uvicorn starts for ``--workers N`` (they import the app by name).
SETTINGS_ENV = "FE_SERVER_SETTINGS"


def settings_for_workers(settings: ServerSettings) -> str:
    """``settings`` as the value of SETTINGS_ENV (the workers are this server's own child processes)."""
    return base64.b64encode(pickle.dumps(settings)).decode()


def app_from_env() -> Litestar:
    """The app factory uvicorn's worker processes call (``server.app:app_from_env``)."""
    _end_with_supervisor()
    settings = pickle.loads(base64.b64decode(os.environ[SETTINGS_ENV]))  # noqa: S301 - written by our own parent process
    return create_app(settings)


#: The pid of the uvicorn supervisor whose workers call ``app_from_env`` (set by ``fe-server run --workers N``).
SUPERVISOR_ENV = "FE_HTTP_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def _end_with_supervisor() -> None:
    """A worker ends when its supervisor does, however it ends: uvicorn's workers outlive a supervisor killed with
    SIGKILL (or by the OOM killer) and go on serving its port with nobody to stop them. Linux sends this process
    SIGTERM (uvicorn's graceful shutdown) when its parent dies; elsewhere nothing changes."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):  # not Linux
        return
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor and os.getppid() != int(supervisor):  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)
