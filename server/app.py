"""``create_app(settings)``: the Litestar app, whose lifespan runs the MQTT ingest."""

from __future__ import annotations

import logging
from pathlib import Path
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import State
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.di import Provide
from litestar.template.config import TemplateConfig
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.exceptions import HTTPException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.static_files import create_static_files_router

from protocol.config import load_toml
from protocol.decision import Policy
from server import api, auth_api, db, evidence_api, exception_api, inspect_api, jobs_api, users_api, web
from server.errors import DomainError, document_answers, error_response, http_error_response, too_deep_response
from server.apidocs import OfflineSwagger
from server.auth import provide_principal
from server.codes import ensure_code_key
from server.headers import add_security_headers
from server.ingest import Ingest
from server.limits import MAX_REQUEST_BODY, too_large_handler
from server.scheduler import Scheduler
from server.keys import load_or_create_server_key
from server.metrics import IngestMetrics
from server.settings import ServerSettings

log = logging.getLogger(__name__)

#: The console's scripts, styles and the API docs' start-up script (the CSP runs no inline script).
STATIC_DIR = Path(__file__).with_name("static")


def create_app(settings: ServerSettings) -> Litestar:
    """Build the app; the database is migrated here, the ingest starts with the lifespan."""
    db.migrate(settings.db)
    key = load_or_create_server_key(settings.server_key_path)
    with db.writing(settings.db) as tx:
        ensure_code_key(tx, settings.key_base)  # devices' snapshots carry it from the start
    metrics = IngestMetrics()
    policy = load_toml(settings.policy_file, Policy)

    @asynccontextmanager
    async def ingest_lifespan(app: Litestar) -> AsyncIterator[None]:
        ingest = Ingest(settings, key, metrics, policy) if settings.mqtt_enabled else None
        scheduler = Scheduler(settings.db, settings.server_key_path, settings.policy_file) if settings.jobs_enabled else None
        app.state.ingest = ingest
        app.state.scheduler = scheduler
        if ingest is not None:
            ingest.start()
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            if ingest is not None:
                ingest.stop()

    app = Litestar(
        route_handlers=[
            auth_api.login,
            auth_api.logout,
            auth_api.me,
            users_api.UserController,
            users_api.users_page,
            *web.ROUTES,
            create_static_files_router(path="/static", directories=[STATIC_DIR]),
            api.health,
            api.ping,
            api.metrics,
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
            evidence_api.EvidenceController,
            evidence_api.inspection_media,
            jobs_api.JobController,
            jobs_api.DrawController,
            jobs_api.DisclosureController,
            jobs_api.jobs_page,
            jobs_api.public_draw_page,
        ],
        state=State({"settings": settings, "metrics": metrics, "ingest": None, "scheduler": None, "server_public_key": key.public_hex, "server_key": key, "policy": policy}),
        lifespan=[ingest_lifespan],
        dependencies={"principal": Provide(provide_principal, sync_to_thread=True)},
        request_max_body_size=MAX_REQUEST_BODY,
        openapi_config=OpenAPIConfig(title="Field-enforcement supervision API", version="1.0.0", path="/schema", render_plugins=[OfflineSwagger("/schema")]),
        response_cache_config=ResponseCacheConfig(),
        template_config=TemplateConfig(directory=Path(__file__).with_name("templates"), engine=JinjaTemplateEngine),
        logging_config=LoggingConfig(log_exceptions="always", disable_stack_trace={400, 401, 403, 404, 405, 409, 413, 422, 429}),
        exception_handlers={
            DomainError: error_response,
            HTTPException: http_error_response,
            RequestEntityTooLarge: too_large_handler,
            RecursionError: too_deep_response,  # a deeply nested JSON body (msgspec's decoder): 400, not 500
        },
        before_send=[add_security_headers],  # CSP, framing, nosniff, referrer: on every answer, 404s included
    )
    document_answers(app)  # every route's OpenAPI answers: 401/403/404/400/413 as its signature implies
    return app
