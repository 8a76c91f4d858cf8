"""Sign-in limits against a real `fe-server run` over HTTP: the client address is uvicorn's decision, so
whether X-Forwarded-For is believed is tested on the real process, with and without --trusted-proxy. The limit
itself is counted in the database: on both backends; the proxy setting is uvicorn's, on SQLite only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from server import db as dbmod
from server.settings import SignInLimits
from server.storage.engine import sql
from tests.server.conftest import seed_users
from tests.system.conftest import Stack

pytestmark = pytest.mark.system


def sign_in(url: str, username: str, password: str, forwarded_for: str | None = None) -> tuple[int, dict[str, str], object]:
    """POST the sign-in, optionally with an X-Forwarded-For header; status, headers (lower-case names), JSON body."""
    headers = {"Content-Type": "application/json", **({"X-Forwarded-For": forwarded_for} if forwarded_for else {})}
    req = urllib.request.Request(url + "/api/v1/auth/login", data=json.dumps({"username": username, "password": password}).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, json.loads(e.read() or b"null")


_ADDRESSES = sql("SELECT key FROM sign_in_failures WHERE kind = 'address'")


def counted_addresses(db: str) -> set[str]:
    with dbmod.reading(db) as tx:
        return {k for (k,) in tx.all(_ADDRESSES)}


def start(stack: Stack, *extra: str) -> str:
    stack.server.argv += list(extra)
    stack.server.start_and_wait()
    with dbmod.writing(stack.server.db) as tx:
        seed_users(tx, [("OFF-SAMR-1", "SAMR")])
    return stack.server.url


def test_a_forged_forwarded_for_neither_resets_nor_moves_the_limit(any_stack: Stack) -> None:
    stack = any_stack
    url = start(stack)
    limit = SignInLimits().pair_failures  # every attempt comes from the one real address
    answers = [sign_in(url, "sup", "wrong-password", forwarded_for=f"198.51.100.{i}") for i in range(limit + 1)]
    assert [a[0] for a in answers] == [401] * limit + [429]
    status, headers, body = answers[-1]
    assert int(headers["retry-after"]) > 0 and "登录失败次数过多" in body["detail"]  # type: ignore[index]
    assert counted_addresses(stack.server.db) == {"127.0.0.1"}  # the connection's address, not the header's
    # another account from the same address is not locked out by it
    assert sign_in(url, "OFF-SAMR-1", "secret-OFF-SAMR-1", forwarded_for="198.51.100.99")[0] == 200


def test_a_configured_proxy_is_believed(stack: Stack) -> None:
    url = start(stack, "--trusted-proxy", "127.0.0.1")
    assert sign_in(url, "sup", "wrong-password", forwarded_for="203.0.113.7")[0] == 401
    assert counted_addresses(stack.server.db) == {"203.0.113.7"}
