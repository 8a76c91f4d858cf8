"""The server's long-lived parts as Litestar plugins (shaped like Litestar's own ``ChannelsPlugin``): the store, the
MQTT ingest and the job scheduler. Which of them a process runs is its role (``fe-server run --role``): the API
alone, the ingest alone, the scheduler alone, or all three as one process (the default, and the demo)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from protocol.decision import Policy
from protocol.signing import SigningKey
from server.ingest.metrics import IngestMetrics
from server.settings import ServerSettings
from server.storage.engine import close_storage


class StoragePlugin(InitPluginProtocol):
    """Closes the process's ``Storage`` (PostgreSQL: its pools) at shutdown; handlers reach it by ``storage_for``."""

    def __init__(self, settings: ServerSettings) -> None:
        self.db = settings.db

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.on_shutdown.append(self._close)
        return app_config

    def _close(self) -> None:
        close_storage(self.db)


class IngestPlugin(InitPluginProtocol):
    """Runs the MQTT ingest for the app's lifetime (``app.state.ingest``; None while it is not running)."""

    def __init__(self, settings: ServerSettings, key: SigningKey, metrics: IngestMetrics, policy: Policy) -> None:
        self.settings, self.key, self.metrics, self.policy = settings, key, metrics, policy

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self._lifespan)
        return app_config

    @asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        from server.ingest.subscriber import Ingest  # paho and the writer thread load only in processes that ingest

        ingest = Ingest(self.settings, self.key, self.metrics, self.policy)
        app.state.ingest = ingest
        ingest.start()
        try:
            yield
        finally:
            ingest.stop()


class SchedulerPlugin(InitPluginProtocol):
    """Runs the job scheduler for the app's lifetime (``app.state.scheduler``)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self._lifespan)
        return app_config

    @asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        from server.jobs.scheduler import Scheduler

        scheduler = Scheduler(self.settings.db, self.settings.server_key_path, self.settings.policy_file)
        app.state.scheduler = scheduler
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()
