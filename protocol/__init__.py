"""The wire protocol between edge devices and the supervision server: messages, topics, codec, signatures."""

from protocol.messages import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION"]
