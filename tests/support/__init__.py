"""Test infrastructure for system tests: a private Mosquitto, a fault-injecting TCP proxy, polling waits.

Import as ``from tests.support import Broker, TcpProxy, wait_for`` (tests/conftest.py makes the
repository root importable). The ``broker``, ``broker_factory`` and ``proxy_factory`` fixtures live in
tests/conftest.py.
"""

from tests.support.broker import Broker, BrokerError, free_port
from tests.support.proxy import TcpProxy
from tests.support.waiting import wait_for

__all__ = ["Broker", "BrokerError", "TcpProxy", "free_port", "wait_for"]
