"""Users, sessions, failed sign-ins and account changes: the rows behind ``server.console.auth`` and ``server.console.accounts``.

No rule lives here (who may sign in, how long a wait lasts, who manages whom): these functions read and write
rows, and take the two locks that make the rules' read-then-write steps safe with several server processes.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from server.storage.engine import Tx, sql

#: A principal's columns, in ``Principal``'s order: username, role, agency_id, officer_id, credit_code.
PrincipalRow = tuple[str, str, str | None, str | None, str | None]
#: An account's columns, in ``accounts.Account``'s order (see ``_ACCOUNT``).
AccountRow = tuple[Any, ...]
#: A failure count: failures, window_start_ms, locked_until_ms.
FailureRow = tuple[int, int, int]

# --- users ----------------------------------------------------------------------------------------------------------

_USER_EXISTS = sql("SELECT 1 FROM users WHERE username = :username")
_INSERT_USER = sql(
    "INSERT INTO users(username, role, agency_id, officer_id, credit_code, password_hash, created_ms)"
    " VALUES (:username, :role, :agency_id, :officer_id, :credit_code, :password_hash, :created_ms)"
    " ON CONFLICT (username) DO NOTHING RETURNING username"
)
_ACTIVE_USER = sql(
    "SELECT username, role, agency_id, officer_id, credit_code, password_hash FROM users WHERE username = :username AND disabled_ms IS NULL"
)
_DISABLE = sql("UPDATE users SET disabled_ms = :now_ms WHERE username = :username AND disabled_ms IS NULL")
_ENABLE = sql("UPDATE users SET disabled_ms = NULL WHERE username = :username AND disabled_ms IS NOT NULL")
_SET_PASSWORD_HASH = sql("UPDATE users SET password_hash = :password_hash WHERE username = :username")


def lock_user(tx: Tx, username: str) -> None:
    """Serialise this transaction with every other one that locks this user until it ends (PostgreSQL; SQLite's
    writers are serialised already): a session is never created by a sign-in that read the account before a
    concurrent disable or password reset committed."""
    tx.lock(f"fe:user:{username}")


def user_exists(tx: Tx, username: str) -> bool:
    return tx.one(_USER_EXISTS, username=username) is not None


def insert_user(
    tx: Tx, *, username: str, role: str, agency_id: str | None, officer_id: str | None, credit_code: str | None,
    password_hash: str, created_ms: int,
) -> bool:
    """Store a new account; False (nothing changed) if the user name is taken."""
    stored = tx.one(
        _INSERT_USER, username=username, role=role, agency_id=agency_id, officer_id=officer_id, credit_code=credit_code,
        password_hash=password_hash, created_ms=created_ms,
    )
    return stored is not None


def active_user(tx: Tx, username: str) -> tuple[PrincipalRow, str] | None:
    """An account that is not disabled: its principal's columns and its password hash; None if there is none."""
    row = tx.one(_ACTIVE_USER, username=username)
    return None if row is None else ((row[0], row[1], row[2], row[3], row[4]), row[5])


def disable_user(tx: Tx, username: str, now_ms: int) -> bool:
    """Mark the account disabled; False if it already was (or does not exist)."""
    return bool(tx.run(_DISABLE, username=username, now_ms=now_ms).rowcount == 1)


def enable_user(tx: Tx, username: str) -> bool:
    """Clear the account's disabled mark; False if it was not disabled (or does not exist)."""
    return bool(tx.run(_ENABLE, username=username).rowcount == 1)


def set_password_hash(tx: Tx, username: str, password_hash: str) -> None:
    tx.run(_SET_PASSWORD_HASH, username=username, password_hash=password_hash)


# --- sessions -------------------------------------------------------------------------------------------------------

_INSERT_SESSION = sql(
    "INSERT INTO sessions(token_hash, username, created_ms, expires_ms)"
    " SELECT :token_hash, username, :created_ms, :expires_ms FROM users WHERE username = :username AND disabled_ms IS NULL"
)
_DELETE_SESSION = sql("DELETE FROM sessions WHERE token_hash = :token_hash")
_DELETE_SESSIONS_OF = sql("DELETE FROM sessions WHERE username = :username")
_SESSION_PRINCIPAL = sql(
    "SELECT u.username, u.role, u.agency_id, u.officer_id, u.credit_code FROM sessions s JOIN users u ON u.username = s.username"
    " WHERE s.token_hash = :token_hash AND s.expires_ms > :now_ms AND u.disabled_ms IS NULL"
)


def insert_session(tx: Tx, *, token_hash: str, username: str, created_ms: int, expires_ms: int) -> bool:
    """Store a session of an account that is not disabled; False (nothing stored) if it is disabled or unknown."""
    cur = tx.run(_INSERT_SESSION, token_hash=token_hash, username=username, created_ms=created_ms, expires_ms=expires_ms)
    return bool(cur.rowcount == 1)


def delete_session(tx: Tx, token_hash: str) -> None:
    tx.run(_DELETE_SESSION, token_hash=token_hash)


def delete_sessions_of(tx: Tx, username: str) -> None:
    tx.run(_DELETE_SESSIONS_OF, username=username)


def session_principal(tx: Tx, token_hash: str, now_ms: int) -> PrincipalRow | None:
    """The principal of an unexpired session of an account that is not disabled, or None."""
    row = tx.one(_SESSION_PRINCIPAL, token_hash=token_hash, now_ms=now_ms)
    return None if row is None else (row[0], row[1], row[2], row[3], row[4])


# --- failed sign-ins ------------------------------------------------------------------------------------------------

#: The one advisory lock every writer of ``sign_in_failures`` takes first (PostgreSQL). Counting an attempt
#: reads a row and writes it back: without a lock two processes counting at once would both write "n + 1" (a lost
#: update), and a success's take-back could be overwritten. One key rather than one per row: the old-row clean-up
#: deletes rows of other keys, which per-row locks taken in different orders could turn into deadlocks. Each holder
#: runs a handful of statements, which SQLite's writers take turns for anyway.
SIGN_IN_FAILURES_LOCK = "fe:sign-in-failures"

_FAILURE = sql("SELECT failures, window_start_ms, locked_until_ms FROM sign_in_failures WHERE kind = :kind AND key = :key")
_PUT_FAILURE = sql(
    "INSERT INTO sign_in_failures(kind, key, failures, window_start_ms, last_failure_ms, locked_until_ms)"
    " VALUES (:kind, :key, :failures, :window_start_ms, :last_failure_ms, :locked_until_ms)"
    " ON CONFLICT (kind, key) DO UPDATE SET failures = excluded.failures, window_start_ms = excluded.window_start_ms,"
    " last_failure_ms = excluded.last_failure_ms, locked_until_ms = excluded.locked_until_ms"
)
_DELETE_FAILURES_BEFORE = sql("DELETE FROM sign_in_failures WHERE last_failure_ms < :before_ms")
_DELETE_FAILURE = sql("DELETE FROM sign_in_failures WHERE kind = :kind AND key = :key")
_TAKE_BACK = sql(
    "UPDATE sign_in_failures SET failures = greatest(failures - 1, 0),"
    " locked_until_ms = CASE WHEN locked_until_ms = :moved_to_ms THEN :moved_from_ms ELSE locked_until_ms END"
    " WHERE kind = :kind AND key = :key"
)
# The keys of kind :kind that end with :suffix and whose part before it has no :separator (a pair's key is
# "address\nusername", an address never holds a newline, so the user name is what follows the first one). Portable
# substr/length instead of SQLite's instr(key, char(10)): one query for both backends, no schema change. It reads
# every row of the kind; only a password reset runs it, and old rows are dropped as they expire.
_DELETE_BY_SUFFIX = sql(
    "DELETE FROM sign_in_failures WHERE kind = :kind AND length(key) >= length(:suffix)"
    " AND substr(key, length(key) - length(:suffix) + 1) = :suffix"
    " AND replace(substr(key, 1, length(key) - length(:suffix)), :separator, '') = substr(key, 1, length(key) - length(:suffix))"
)


def lock_failures(tx: Tx) -> None:
    """Take ``SIGN_IN_FAILURES_LOCK`` until this transaction ends (call before reading or writing any count)."""
    tx.lock(SIGN_IN_FAILURES_LOCK)


def failure(tx: Tx, kind: str, key: str) -> FailureRow | None:
    """The count under one key: (failures, window_start_ms, locked_until_ms), or None."""
    row = tx.one(_FAILURE, kind=kind, key=key)
    return None if row is None else (row[0], row[1], row[2])


def put_failure(tx: Tx, *, kind: str, key: str, failures: int, window_start_ms: int, last_failure_ms: int, locked_until_ms: int) -> None:
    """Store the count under one key (inserted or replaced)."""
    tx.run(
        _PUT_FAILURE, kind=kind, key=key, failures=failures, window_start_ms=window_start_ms, last_failure_ms=last_failure_ms,
        locked_until_ms=locked_until_ms,
    )


def delete_failures_before(tx: Tx, before_ms: int) -> None:
    """Drop every count whose last failure is older than ``before_ms``."""
    tx.run(_DELETE_FAILURES_BEFORE, before_ms=before_ms)


def delete_failure(tx: Tx, kind: str, key: str) -> None:
    tx.run(_DELETE_FAILURE, kind=kind, key=key)


def take_back_failure(tx: Tx, *, kind: str, key: str, moved_from_ms: int, moved_to_ms: int) -> None:
    """One failure fewer under a key (never below 0), and its lock end put back to ``moved_from_ms`` if it is still
    the ``moved_to_ms`` that failure set (a later failure's longer lock stays)."""
    tx.run(_TAKE_BACK, kind=kind, key=key, moved_from_ms=moved_from_ms, moved_to_ms=moved_to_ms)


def delete_failures_ending_with(tx: Tx, kind: str, separator: str, tail: str) -> None:
    """Drop the counts of ``kind`` whose key is ``<head><separator><tail>`` with no ``separator`` in ``head``."""
    tx.run(_DELETE_BY_SUFFIX, kind=kind, suffix=separator + tail, separator=separator)


# --- accounts and their changes ---------------------------------------------------------------------------------------

_ACCOUNT = """
SELECT u.username, u.role, u.agency_id, a.name, u.officer_id, o.name, u.credit_code, e.name, u.created_ms, u.disabled_ms,
       (SELECT count(*) FROM sessions s WHERE s.username = u.username AND s.expires_ms > :now_ms),
       c.action, c.by_username, c.at_ms
FROM users u
LEFT JOIN agencies a ON a.agency_id = u.agency_id
LEFT JOIN officers o ON o.officer_id = u.officer_id
LEFT JOIN enterprises e ON e.credit_code = u.credit_code
LEFT JOIN account_changes c ON c.id = (SELECT max(id) FROM account_changes WHERE username = u.username)
"""
_ALL_ACCOUNTS = sql(_ACCOUNT + " ORDER BY u.role, u.agency_id NULLS FIRST, u.username")
_AGENCY_ACCOUNTS = sql(_ACCOUNT + " WHERE u.agency_id = :agency_id AND u.role IN (:roles) ORDER BY u.role, u.username")
_ONE_ACCOUNT = sql(_ACCOUNT + " WHERE u.username = :username")
_INSERT_CHANGE = sql("INSERT INTO account_changes(username, action, by_username, at_ms) VALUES (:username, :action, :by, :at_ms)")
_CHANGES = sql("SELECT action, by_username, at_ms FROM account_changes WHERE username = :username ORDER BY id")


def all_accounts(tx: Tx, now_ms: int) -> list[AccountRow]:
    """Every account, by role, agency and user name (its active sessions counted at ``now_ms``)."""
    return tx.all(_ALL_ACCOUNTS, now_ms=now_ms)


def agency_accounts(tx: Tx, agency_id: str | None, roles: Collection[str], now_ms: int) -> list[AccountRow]:
    """The accounts of one agency that have one of ``roles``, by role and user name."""
    return tx.all(_AGENCY_ACCOUNTS, now_ms=now_ms, agency_id=agency_id, roles=tuple(roles))


def account(tx: Tx, username: str, now_ms: int) -> AccountRow | None:
    return tx.one(_ONE_ACCOUNT, now_ms=now_ms, username=username)


def insert_change(tx: Tx, *, username: str, action: str, by: str, at_ms: int) -> None:
    tx.run(_INSERT_CHANGE, username=username, action=action, by=by, at_ms=at_ms)


def changes(tx: Tx, username: str) -> list[tuple[str, str, int]]:
    """(action, by, at_ms) of every change of an account, oldest first."""
    return [(r[0], r[1], r[2]) for r in tx.all(_CHANGES, username=username)]
