"""The wire protocol between edge devices and the supervision server: messages, topics, codec, signatures."""

from typing import Any

__all__ = ["SCHEMA_VERSION"]


def __getattr__(name: str) -> Any:
    """``SCHEMA_VERSION`` on first use: importing the package needs no msgspec (protocol.verify_bundle runs without)."""
    if name == "SCHEMA_VERSION":
        from protocol.messages import SCHEMA_VERSION

        return SCHEMA_VERSION
    raise AttributeError(f"module 'protocol' has no attribute {name!r}")
