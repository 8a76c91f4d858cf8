"""The edge agent's exceptions."""

from __future__ import annotations


class EdgeAgentError(Exception):
    """Base of every error the agent reports to its caller; ``code`` is stable and machine-readable."""

    code = "agent_error"


class InvalidEvent(EdgeAgentError):
    """The submitted event does not match the protocol's schema."""

    code = "invalid_event"


class OutboxFull(EdgeAgentError):
    """The outbox has reached a size limit; nothing stored was removed to make room."""

    code = "outbox_full"


class DiskFull(OutboxFull):
    """The storage under the outbox is full (SQLITE_FULL)."""

    code = "disk_full"


class ConfigMissing(EdgeAgentError):
    """The config lacks what this command needs (e.g. the device identity)."""

    code = "config_missing"
