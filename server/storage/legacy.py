"""Transition (issue 12): callers not yet moved to the seam still hold a raw ``sqlite3.Connection``; the rule modules
that have moved wrap it here, so both kinds of caller work until the last raw connection is gone."""

from __future__ import annotations

import sqlite3

from server.storage.engine import Backend, Tx

#: What a moved rule module accepts while unmoved callers remain: a Tx, or a raw SQLite connection.
Con = Tx | sqlite3.Connection


def as_tx(con: Con) -> Tx:
    """``con`` itself if it is a Tx, else the SQLite connection wrapped in one (inside the caller's transaction)."""
    return con if isinstance(con, Tx) else Tx(con, Backend.SQLITE)
