"""Sign-in limits as an attacker and as an office full of honest officers would meet them.

Failures are counted in the database per (account, address) pair (low threshold), per client address
(high) and per account (much higher), with a doubling wait; a success never counts against an address.
A guesser at one address cannot keep an account's owner, signing in from another address, out. Clock-dependent rules are tested through ``sign_in_limited``
with an explicit ``now_ms`` (no waiting); the answers a user sees are tested over HTTP. Everything runs on both
backends (``seeded_url``); the attacks of several server processes at once matter on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from litestar.testing import TestClient

from server import db as dbmod
from server.console.accounts import disable_account
from server.app import create_app
from server.console.auth import SignInThrottled, add_user, forget_failures, sign_in_limited
from server.settings import SignInLimits
from server.storage.engine import sql
from tests.server.api_backends import api, settings  # noqa: F401  (api: a fixture, on both backends)
from tests.server.conftest import Api, password, password_hash

LOGIN = "/api/v1/auth/login"
LIMITS = SignInLimits()
T0 = 1_800_000_000_000
SECOND = 1000


def attempt(client: TestClient, username: str, good: bool = False):  # type: ignore[no-untyped-def,type-arg]
    """One sign-in over HTTP, with the right password or a wrong one."""
    return client.post(LOGIN, json={"username": username, "password": password(username) if good else "wrong-password"})


_FAILURES = sql("SELECT kind, key, failures FROM sign_in_failures ORDER BY kind, key")


def failures_table(db: str) -> list[tuple[str, str, int]]:
    with dbmod.reading(db) as tx:
        return [(kind, key, n) for kind, key, n in tx.all(_FAILURES)]


def test_thirty_officers_at_one_office_address_are_never_throttled(seeded_url: str, tmp_path: Path) -> None:
    """Shift change: 30 officers sign in from one address, a few mistyping first; nobody waits."""
    with dbmod.writing(seeded_url) as tx:
        for i in range(30):
            name = f"shift-{i:02d}"
            add_user(tx, name, password(name), "officer", agency_id="SAMR", officer_id="OFF-SAMR-1", password_hash=password_hash(name))
    with TestClient(create_app(settings(seeded_url, tmp_path))) as client:
        for i in range(30):
            name = f"shift-{i:02d}"
            if i % 3 == 0:
                assert attempt(client, name).status_code == 401  # a typo
            assert attempt(client, name, good=True).status_code == 200, name
        # and again at the end of the shift: successes never add up
        assert [attempt(client, f"shift-{i:02d}", good=True).status_code for i in range(30)] == [200] * 30


def test_wrong_passwords_throttle_that_account_and_not_another(api: Api) -> None:
    client = api.client
    assert [attempt(client, "sup").status_code for _ in range(LIMITS.pair_failures)] == [401] * LIMITS.pair_failures
    sixth = attempt(client, "sup")
    assert sixth.status_code == 429
    assert int(sixth.headers["Retry-After"]) > 0
    assert sixth.json()["detail"].startswith("登录失败次数过多，请 ") and "秒后再试 / too many failed sign-ins, try again in" in sixth.json()["detail"]
    assert attempt(client, "sup", good=True).status_code == 429  # the right password waits too
    assert attempt(client, "admin-SAMR").status_code == 401  # another account is not affected
    assert attempt(client, "OFF-SAMR-1", good=True).status_code == 200


def test_the_throttled_answer_does_not_tell_whether_the_account_exists(api: Api) -> None:
    client = api.client
    answers = {}
    for name in ("sup", "no-such-user"):
        for _ in range(LIMITS.pair_failures):
            assert attempt(client, name).status_code == 401
        r = attempt(client, name)
        answers[name] = (r.status_code, r.headers["Retry-After"], r.json())
    assert answers["sup"] == answers["no-such-user"]
    assert answers["sup"][0] == 429


def test_during_a_wait_the_right_and_a_wrong_password_get_the_same_answer(api: Api) -> None:
    """Otherwise the wait (Retry-After) would tell a guesser which guess was right."""
    client = api.client
    for name in ("admin-SAMR", "admin-FIRE"):
        for _ in range(LIMITS.pair_failures):
            attempt(client, name)
    right, wrong = attempt(client, "admin-SAMR", good=True), attempt(client, "admin-FIRE")
    assert right.status_code == wrong.status_code == 429
    assert right.headers["Retry-After"] == wrong.headers["Retry-After"] and right.json() == wrong.json()


def test_each_attempt_during_a_wait_doubles_it_up_to_the_cap(api: Api) -> None:
    client = api.client
    for _ in range(LIMITS.pair_failures):
        attempt(client, "sup")
    waits = [int(attempt(client, "sup").headers["Retry-After"]) for _ in range(8)]
    base = int(LIMITS.backoff_s)
    assert waits[:4] == [2 * base, 4 * base, 8 * base, 16 * base]
    assert waits[-1] == int(LIMITS.backoff_max_s)


def test_a_success_clears_the_accounts_failures(api: Api) -> None:
    client = api.client
    below = LIMITS.pair_failures - 1
    for _ in range(3):
        assert [attempt(client, "sup").status_code for _ in range(below)] == [401] * below
        assert attempt(client, "sup", good=True).status_code == 200


def test_a_disabled_or_unknown_account_fails_like_a_wrong_password(api: Api, seeded_url: str) -> None:
    with dbmod.writing(seeded_url) as tx:
        disable_account(tx, "admin-FIRE", "sup", 1)
    a, b = attempt(api.client, "admin-FIRE", good=True), attempt(api.client, "nobody-at-all")
    assert a.status_code == b.status_code == 401 and a.json() == b.json()


@pytest.fixture
def db(seeded_url: str) -> str:
    return seeded_url


def limited(db: str, username: str, good: bool, address: str, now: int, limits: SignInLimits = LIMITS) -> str:
    """One attempt through sign_in_limited: 'ok', 'wrong' or 'wait <seconds>'."""
    try:
        result = sign_in_limited(db, username, password(username) if good else "wrong", address=address, limits=limits, now_ms=now)
    except SignInThrottled as e:
        return f"wait {e.retry_after_s}"
    return "ok" if result else "wrong"


def test_failures_from_many_addresses_add_up_on_the_account(db: str) -> None:
    outcomes = [limited(db, "sup", False, f"198.51.100.{i}", T0 + i) for i in range(LIMITS.account_failures + 1)]
    assert outcomes[:-1] == ["wrong"] * LIMITS.account_failures and outcomes[-1].startswith("wait")


def test_the_wait_ends_and_the_next_failure_waits_twice_as_long(db: str) -> None:
    base = int(LIMITS.backoff_s)
    now = T0
    for _ in range(LIMITS.pair_failures):
        assert limited(db, "sup", False, "a", now) == "wrong"
    # during the wait even the right password is refused, and counts: the wait doubles from then
    now += (base - 1) * SECOND
    assert limited(db, "sup", True, "a", now) == f"wait {2 * base}"
    # once it is over one more guess is heard; it fails, and the wait doubles again
    now += 2 * base * SECOND
    assert limited(db, "sup", False, "a", now) == "wrong"
    assert limited(db, "sup", False, "a", now) == f"wait {8 * base}"
    # after a quiet window past the last wait, the pair starts afresh; a success clears it at once
    now += int((8 * base + LIMITS.window_s) * SECOND)
    assert [limited(db, "sup", False, "a", now) for _ in range(LIMITS.pair_failures - 1)] == ["wrong"] * (LIMITS.pair_failures - 1)
    assert limited(db, "sup", True, "a", now) == "ok"
    assert ("pair", "a\nsup") not in [(k, key) for k, key, _ in failures_table(db)]


def test_failures_spread_over_windows_do_not_add_up(db: str) -> None:
    window_ms = int(LIMITS.window_s * SECOND)
    for day in range(3):
        now = T0 + day * 2 * window_ms
        assert [limited(db, "sup", False, "a", now + i) for i in range(LIMITS.pair_failures - 1)] == ["wrong"] * (LIMITS.pair_failures - 1)
    assert limited(db, "sup", True, "a", T0 + 6 * window_ms) == "ok"


def test_an_address_with_many_failures_waits_whatever_the_account(db: str) -> None:
    limits = SignInLimits(pair_failures=5, address_failures=8)
    names = ["OFF-SAMR-1", "OFF-SAMR-2", "OFF-FIRE-1", "admin-SAMR", "admin-FIRE", "sup", "ent-plain", "x", "y"]
    outcomes = [limited(db, name, False, "203.0.113.1", T0, limits) for name in names]
    assert outcomes[:8] == ["wrong"] * 8 and outcomes[8].startswith("wait")
    assert limited(db, "OFF-SAMR-1", True, "203.0.113.1", T0, limits).startswith("wait")
    assert limited(db, "OFF-SAMR-1", True, "203.0.113.2", T0, limits) == "ok"  # another address is not affected


def test_successes_take_their_count_back_from_the_address(db: str) -> None:
    limits = SignInLimits(pair_failures=5, address_failures=3)
    for _ in range(10):
        assert limited(db, "OFF-SAMR-1", True, "10.1.1.1", T0, limits) == "ok"
    assert ("address", "10.1.1.1", 0) in failures_table(db)
    # the address limit is reached only by failures: two may be followed by successes
    assert limited(db, "x", False, "10.1.1.1", T0, limits) == "wrong"
    assert limited(db, "y", False, "10.1.1.1", T0, limits) == "wrong"
    assert limited(db, "OFF-SAMR-2", True, "10.1.1.1", T0, limits) == "ok"
    assert limited(db, "OFF-SAMR-2", True, "10.1.1.1", T0, limits) == "ok"


@pytest.mark.parametrize("spread", [False, True], ids=["one-address", "many-addresses"])
def test_parallel_guesses_cannot_slip_past_the_limit(db: str, spread: bool) -> None:
    """Every attempt is counted in the database before its password is checked: guesses from one address
    meet the pair's limit, guesses from as many addresses the account's."""
    limits = SignInLimits(pair_failures=5, account_failures=7)
    threshold = limits.account_failures if spread else limits.pair_failures
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def guess(i: int) -> None:
        start.wait()
        out = limited(db, "sup", False, f"192.0.2.{i}" if spread else "192.0.2.1", T0, limits)
        with lock:
            outcomes.append(out)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("wrong") == threshold
    assert sum(o.startswith("wait") for o in outcomes) == 12 - threshold


def test_old_rows_are_dropped(db: str) -> None:
    limited(db, "x", False, "a", T0)
    limited(db, "y", False, "b", T0 + int((LIMITS.window_s + LIMITS.backoff_max_s) * SECOND) + 1)
    assert failures_table(db) == [("account", "y", 1), ("address", "b", 1), ("pair", "b\ny", 1)]


MINUTE = 60 * SECOND


def test_a_guesser_at_one_address_cannot_lock_the_owner_out(db: str) -> None:
    """The reviewer's attack: 10 guesses at OFF-SAMR-1 from 10.0.0.66, then one every 10 minutes for 3 hours;
    the officer, from 10.0.0.5 with the right password a minute after each, always gets in, while the
    guesser keeps waiting (its own attempts during its wait make it longer)."""
    guesser = [limited(db, "OFF-SAMR-1", False, "10.0.0.66", T0 + i) for i in range(10)]
    assert guesser[: LIMITS.pair_failures] == ["wrong"] * LIMITS.pair_failures
    assert all(o.startswith("wait") for o in guesser[LIMITS.pair_failures :])
    assert limited(db, "OFF-SAMR-1", True, "10.0.0.5", T0 + 20) == "ok"
    for k in range(1, 19):
        now = T0 + k * 10 * MINUTE
        assert limited(db, "OFF-SAMR-1", False, "10.0.0.66", now).startswith("wait"), k
        assert limited(db, "OFF-SAMR-1", True, "10.0.0.5", now + MINUTE) == "ok", k
    # the guesser's right guess would be refused unchecked too
    assert limited(db, "OFF-SAMR-1", True, "10.0.0.66", T0 + 181 * MINUTE).startswith("wait")


def test_a_guesser_whose_address_waits_does_not_lock_another_account(db: str) -> None:
    """The reviewer's second attack: 120 failures on made-up names lock the address; its further guesses at
    OFF-SAMR-2 are refused unchecked and do not count on OFF-SAMR-2, whose owner signs in from elsewhere."""
    for i in range(120):
        limited(db, f"nobody{i}", False, "10.0.0.77", T0 + i)
    assert limited(db, "OFF-SAMR-2", False, "10.0.0.77", T0 + 200).startswith("wait")
    for i in range(60):
        assert limited(db, "OFF-SAMR-2", False, "10.0.0.77", T0 + 300 + i).startswith("wait")
    assert limited(db, "OFF-SAMR-2", True, "10.0.0.6", T0 + 2 * MINUTE) == "ok"
    assert [n for k, key, n in failures_table(db) if (k, key) == ("account", "OFF-SAMR-2")] in ([], [0])


def test_guesses_spread_over_many_addresses_lock_the_account_and_the_owner_cannot_extend_it(db: str) -> None:
    """A distributed guesser (one guess from each of many addresses) is stopped by the account's threshold:
    then even the owner waits, but the owner's own tries during the wait do not make it longer."""
    outcomes = [limited(db, "sup", False, f"198.51.100.{i}", T0 + i) for i in range(LIMITS.account_failures + 1)]
    assert outcomes[:-1] == ["wrong"] * LIMITS.account_failures
    wait = outcomes[-1]
    assert wait == f"wait {int(LIMITS.backoff_s)}"
    # the owner, from a clean address, waits too, and retrying does not lengthen it nor lock its own pair
    assert [limited(db, "sup", True, "10.0.0.5", T0 + 100 + i) for i in range(10)] == [wait] * 10
    assert limited(db, "sup", True, "10.0.0.5", T0 + 100 + int(LIMITS.backoff_s * SECOND)) == "ok"


def test_below_the_account_threshold_other_addresses_failures_do_not_block_a_clean_address(db: str) -> None:
    """Nine addresses each guess up to their pair's limit (45 failures), a tenth four times: all are heard and
    wrong, and the owner, from an address without failures for the account, gets in."""
    guesses = [(f"198.51.100.{i}", LIMITS.pair_failures) for i in range(9)] + [("198.51.100.9", 4)]
    assert sum(n for _, n in guesses) == LIMITS.account_failures - 1
    for address, n in guesses:
        assert [limited(db, "sup", False, address, T0) for _ in range(n)] == ["wrong"] * n
    assert limited(db, "sup", False, "198.51.100.0", T0).startswith("wait")  # that pair waits
    assert limited(db, "sup", True, "10.0.0.5", T0 + 100) == "ok"
    # the success took only its own count back: the others' failures stay counted on the account
    assert ("account", "sup", LIMITS.account_failures - 1) in failures_table(db)


def test_a_password_reset_clears_the_accounts_failures_from_every_address(db: str) -> None:
    for address in ("10.0.0.1", "10.0.0.2"):
        for _ in range(LIMITS.pair_failures + 1):
            limited(db, "sup", False, address, T0)
    limited(db, "admin-SAMR", False, "10.0.0.1", T0)
    with dbmod.writing(db) as tx:
        forget_failures(tx, "sup")
    assert [(k, key) for k, key, _ in failures_table(db) if k != "address"] == [("account", "admin-SAMR"), ("pair", "10.0.0.1\nadmin-SAMR")]
    assert limited(db, "sup", True, "10.0.0.1", T0 + 1) == "ok"


# --- several server processes at once ------------------------------------------------------------------------------

#: Attempts per thread and threads per process in the two-process test (half of the attempts wrong).
_ROUNDS, _THREADS = 6, 4
_HIGH = SignInLimits(pair_failures=1000, address_failures=1000, account_failures=1000)


def _sign_in_from_one_office(db: str, start: threading.Barrier) -> None:
    """One server process: threads alternate a wrong password for 'sup' and OFF-SAMR-1's right one, all from one
    address (a wrong one counts on the pair, the address and the account; a right one takes its count back)."""
    start.wait()
    problems: list[str] = []

    def rounds(t: int) -> None:
        for i in range(_ROUNDS):
            name, good = ("OFF-SAMR-1", True) if i % 2 else ("sup", False)
            out = limited(db, name, good, "10.9.9.9", T0 + t, _HIGH)
            if out != ("ok" if good else "wrong"):
                problems.append(out)

    threads = [threading.Thread(target=rounds, args=(t,)) for t in range(_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not problems, problems


def test_two_server_processes_counting_at_once_lose_no_failure(db: str) -> None:
    """Two processes (each its own connections) count one address's failures and take successes back at once:
    every count is read and written back under the database's lock, so none is lost (PostgreSQL's READ COMMITTED
    alone would let two 'n + 1' writes collide)."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_sign_in_from_one_office, args=(db, start)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    wrong = 2 * _THREADS * (_ROUNDS // 2)
    counts = {(kind, key): n for kind, key, n in failures_table(db)}
    assert counts[("account", "sup")] == counts[("address", "10.9.9.9")] == counts[("pair", "10.9.9.9\nsup")] == wrong
    assert counts.get(("account", "OFF-SAMR-1"), 0) == 0 and ("pair", "10.9.9.9\nOFF-SAMR-1") not in counts
