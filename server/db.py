"""The server's SQLite database: connection settings and migrations (one place for the schema)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from server.storage.engine import Backend, Tx, backend_of, readonly_uri, sqlite_connect, sqlite_transaction, storage_for
from server.storage.revisions import sqlite_file_is_current

__all__ = ["MIGRATIONS", "connect", "migrate", "reading", "readonly_uri", "transaction", "writing"]

#: The old ordered migrations, FROZEN since the Alembic baseline (server/storage/migrations/versions/0001_baseline.py
#: builds what they build): a schema change is a new Alembic revision, not an entry here. They still finish a file
#: made by an older server before it is stamped; its user_version says how many have run.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE devices (
        device_id TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        kind TEXT NOT NULL,
        agency_id TEXT NOT NULL,
        public_key TEXT NOT NULL,
        wire_format TEXT NOT NULL DEFAULT 'json',
        registered_ms INTEGER NOT NULL,
        revoked_ms INTEGER
    );
    CREATE TABLE events (
        event_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(device_id),
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        device_time_ms INTEGER NOT NULL,
        clock_error_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        stored_ms INTEGER NOT NULL,
        wire_format TEXT NOT NULL,
        body BLOB NOT NULL,
        sig BLOB NOT NULL,
        body_json TEXT NOT NULL,
        UNIQUE (device_id, seq)
    );
    CREATE INDEX events_by_type_time ON events(type, device_time_ms);
    CREATE INDEX events_by_stored ON events(stored_ms);
    CREATE TABLE device_state (
        device_id TEXT PRIMARY KEY REFERENCES devices(device_id),
        last_seen_ms INTEGER,
        max_seq INTEGER NOT NULL DEFAULT 0,
        stored_count INTEGER NOT NULL DEFAULT 0,
        duplicate_count INTEGER NOT NULL DEFAULT 0,
        online INTEGER NOT NULL DEFAULT 0,
        presence_ms INTEGER,
        last_status_json TEXT
    );
    CREATE TABLE rejected (
        id INTEGER PRIMARY KEY,
        received_ms INTEGER NOT NULL,
        topic TEXT NOT NULL,
        device_id TEXT,
        event_id TEXT,
        reason_code TEXT NOT NULL,
        reason TEXT NOT NULL,
        raw BLOB NOT NULL
    );
    CREATE INDEX rejected_by_time ON rejected(received_ms);
    """,
    # 2: registers, enterprise codes, inspections, scans and alerts (scan-to-inspect).
    """
    ALTER TABLE devices ADD COLUMN region TEXT NOT NULL DEFAULT '';
    CREATE TABLE fields (
        field_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        name_en TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE agencies (
        agency_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        name_en TEXT NOT NULL DEFAULT '',
        region TEXT NOT NULL DEFAULT '',
        fields TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE enterprises (
        credit_code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        address TEXT NOT NULL DEFAULT '',
        region TEXT NOT NULL DEFAULT '',
        risk TEXT NOT NULL DEFAULT 'medium',
        credit TEXT NOT NULL DEFAULT 'B'
    ) WITHOUT ROWID;
    CREATE INDEX enterprises_by_region ON enterprises(region);
    CREATE TABLE officers (
        officer_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        agency_id TEXT NOT NULL,
        credential_no TEXT NOT NULL UNIQUE,
        fields TEXT NOT NULL DEFAULT '[]',
        valid_from_ms INTEGER NOT NULL,
        valid_to_ms INTEGER NOT NULL,
        revoked_ms INTEGER
    );
    CREATE INDEX officers_by_agency ON officers(agency_id);
    CREATE TABLE no_disturb (
        id INTEGER PRIMARY KEY,
        credit_code TEXT NOT NULL,
        basis TEXT NOT NULL,
        valid_from_ms INTEGER NOT NULL,
        valid_to_ms INTEGER,
        added_by TEXT NOT NULL,
        added_ms INTEGER NOT NULL,
        removed_ms INTEGER
    );
    CREATE INDEX no_disturb_by_code ON no_disturb(credit_code);
    CREATE TABLE plans (
        plan_id TEXT PRIMARY KEY,
        agency_id TEXT NOT NULL,
        field TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'random_draw',
        title TEXT NOT NULL,
        valid_from_ms INTEGER NOT NULL,
        valid_to_ms INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE plan_targets (
        plan_id TEXT NOT NULL REFERENCES plans(plan_id),
        credit_code TEXT NOT NULL,
        PRIMARY KEY (plan_id, credit_code)
    ) WITHOUT ROWID;
    CREATE INDEX plan_targets_by_code ON plan_targets(credit_code);
    CREATE TABLE complaints (
        ticket_no TEXT PRIMARY KEY,
        credit_code TEXT NOT NULL,
        field TEXT,
        summary TEXT NOT NULL DEFAULT '',
        received_ms INTEGER NOT NULL,
        closed_ms INTEGER
    );
    CREATE INDEX complaints_by_code ON complaints(credit_code);
    CREATE TABLE code_keys (
        key_id TEXT PRIMARY KEY,
        public_key TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        retired_ms INTEGER
    );
    CREATE TABLE issued_codes (
        credit_code TEXT NOT NULL,
        issued TEXT NOT NULL,
        key_id TEXT NOT NULL,
        text TEXT NOT NULL,
        issued_ms INTEGER NOT NULL,
        revoked_ms INTEGER,
        revoked_reason TEXT,
        PRIMARY KEY (credit_code, issued)
    );
    CREATE TABLE inspections (
        inspection_id TEXT PRIMARY KEY,
        credit_code TEXT NOT NULL,
        region TEXT NOT NULL DEFAULT '',
        lead_agency_id TEXT NOT NULL,
        field TEXT NOT NULL,
        status TEXT NOT NULL,
        opened_ms INTEGER NOT NULL,
        ended_ms INTEGER,
        exception_kind TEXT,
        exception_ref TEXT
    );
    CREATE INDEX inspections_by_enterprise ON inspections(credit_code, opened_ms);
    CREATE INDEX inspections_open ON inspections(status, opened_ms);
    CREATE TABLE inspection_parts (
        inspection_id TEXT NOT NULL REFERENCES inspections(inspection_id),
        officer_id TEXT NOT NULL,
        agency_id TEXT NOT NULL,
        field TEXT NOT NULL,
        matter TEXT NOT NULL DEFAULT '',
        scan_id TEXT,
        device_id TEXT,
        joined_ms INTEGER NOT NULL,
        ended_ms INTEGER,
        result TEXT,
        summary TEXT,
        PRIMARY KEY (inspection_id, officer_id)
    ) WITHOUT ROWID;
    CREATE INDEX inspection_parts_by_officer ON inspection_parts(officer_id, joined_ms);
    CREATE TABLE scans (
        scan_id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        device_id TEXT,
        officer_id TEXT NOT NULL,
        agency_id TEXT,
        credit_code TEXT,
        code_text TEXT NOT NULL,
        field TEXT,
        matter TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT '',
        exception_kind TEXT,
        exception_ref TEXT,
        lat REAL,
        lon REAL,
        scanned_ms INTEGER NOT NULL,
        decided_ms INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        code TEXT NOT NULL,
        inspection_id TEXT,
        decision_json TEXT NOT NULL
    );
    CREATE INDEX scans_by_enterprise ON scans(credit_code, scanned_ms);
    CREATE INDEX scans_by_time ON scans(decided_ms);
    CREATE TABLE provisional_decisions (
        scan_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        outcome TEXT NOT NULL,
        code TEXT NOT NULL,
        snapshot_version INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        compared_ms INTEGER,
        overturned INTEGER
    );
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        created_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        credit_code TEXT,
        agency_id TEXT,
        device_id TEXT,
        officer_id TEXT,
        ref TEXT,
        message_zh TEXT NOT NULL,
        message_en TEXT NOT NULL,
        acknowledged_ms INTEGER
    );
    CREATE INDEX alerts_by_time ON alerts(created_ms);
    """,
    # 3: evidence integrity: the Merkle log, signed tree heads, device chains, media records.
    """
    ALTER TABLE events ADD COLUMN prev_hash TEXT;
    ALTER TABLE events ADD COLUMN body_sha256 TEXT;
    CREATE TABLE evidence_log (
        idx INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        leaf_hash BLOB NOT NULL,
        appended_ms INTEGER NOT NULL
    );
    CREATE TABLE log_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        frontier BLOB NOT NULL,
        size INTEGER NOT NULL
    );
    CREATE TABLE tree_heads (
        tree_size INTEGER NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        root_hash BLOB NOT NULL,
        signature BLOB NOT NULL,
        PRIMARY KEY (tree_size, timestamp_ms)
    );
    CREATE TABLE media (
        event_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        officer_id TEXT,
        inspection_id TEXT,
        case_no TEXT,
        file_name TEXT NOT NULL,
        media_kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        started_ms INTEGER,
        ended_ms INTEGER,
        integrity TEXT NOT NULL DEFAULT 'ok',
        integrity_ms INTEGER
    );
    CREATE INDEX media_by_officer ON media(officer_id, started_ms);
    CREATE INDEX media_by_device ON media(device_id, started_ms);
    CREATE INDEX media_by_inspection ON media(inspection_id);
    """,
    # 4: scheduled supervision jobs: runs, random draws, conflicts, decisions to disclose, case-file samples, retention.
    """
    CREATE TABLE job_runs (
        id INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        finished_ms INTEGER,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX job_runs_by_job ON job_runs(job_id, started_ms);
    CREATE TABLE draws (
        draw_id TEXT PRIMARY KEY,
        agency_id TEXT NOT NULL,
        field TEXT NOT NULL,
        region TEXT NOT NULL DEFAULT '',
        title TEXT NOT NULL,
        enterprise_count INTEGER NOT NULL,
        officers_per_team INTEGER NOT NULL,
        seed_hash TEXT NOT NULL,
        seed TEXT,
        committed_ms INTEGER NOT NULL,
        draw_at_ms INTEGER NOT NULL,
        drawn_ms INTEGER,
        status TEXT NOT NULL,
        result_json TEXT
    );
    CREATE TABLE conflicts (
        officer_id TEXT NOT NULL,
        credit_code TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        declared_ms INTEGER NOT NULL,
        PRIMARY KEY (officer_id, credit_code)
    ) WITHOUT ROWID;
    CREATE TABLE decisions (
        decision_id TEXT PRIMARY KEY,
        agency_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        case_no TEXT NOT NULL DEFAULT '',
        credit_code TEXT,
        decided_on TEXT NOT NULL,
        deadline TEXT NOT NULL,
        calendar_approximate INTEGER NOT NULL DEFAULT 0,
        disclosed_on TEXT,
        status TEXT NOT NULL,
        due_alerted INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX decisions_by_agency ON decisions(agency_id, decided_on);
    CREATE TABLE samples (
        sample_id TEXT PRIMARY KEY,
        agency_id TEXT NOT NULL,
        period TEXT NOT NULL,
        seed TEXT NOT NULL,
        drawn_ms INTEGER NOT NULL,
        population INTEGER NOT NULL,
        UNIQUE (agency_id, period)
    );
    CREATE TABLE sample_items (
        sample_id TEXT NOT NULL REFERENCES samples(sample_id),
        decision_id TEXT NOT NULL,
        result TEXT,
        reviewer TEXT,
        notes TEXT,
        reviewed_ms INTEGER,
        PRIMARY KEY (sample_id, decision_id)
    ) WITHOUT ROWID;
    CREATE TABLE retention_removed (
        event_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        log_index INTEGER,
        type TEXT NOT NULL,
        removed_ms INTEGER NOT NULL,
        rule TEXT NOT NULL
    );
    """,
    # 5: users and sessions of the web console.
    """
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        agency_id TEXT,
        officer_id TEXT,
        credit_code TEXT,
        password_hash TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        disabled_ms INTEGER
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL REFERENCES users(username),
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    """,
    # 6: registers of superior assignments and major-risk notices, the review queue of unregistered urgent
    # exceptions, and when an ended inspection was checked for full-process recording.
    """
    CREATE TABLE exception_bases (
        kind TEXT NOT NULL,
        reference TEXT NOT NULL,
        credit_code TEXT NOT NULL,
        agency_id TEXT,
        field TEXT,
        issued_by TEXT NOT NULL,
        summary TEXT NOT NULL DEFAULT '',
        valid_from_ms INTEGER NOT NULL,
        valid_to_ms INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        withdrawn_ms INTEGER,
        withdrawn_by TEXT,
        PRIMARY KEY (kind, reference, credit_code)
    );
    CREATE INDEX exception_bases_by_code ON exception_bases(credit_code);
    CREATE TABLE exception_reviews (
        scan_id TEXT PRIMARY KEY,
        inspection_id TEXT,
        kind TEXT NOT NULL,
        reference TEXT NOT NULL,
        credit_code TEXT NOT NULL,
        officer_id TEXT NOT NULL,
        agency_id TEXT,
        problem TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        status TEXT NOT NULL,
        reviewed_by TEXT,
        reviewed_ms INTEGER,
        note TEXT
    );
    CREATE INDEX exception_reviews_by_status ON exception_reviews(status, created_ms);
    ALTER TABLE inspections ADD COLUMN recording_checked_ms INTEGER;
    CREATE INDEX inspections_recording_unchecked ON inspections(ended_ms) WHERE recording_checked_ms IS NULL AND ended_ms IS NOT NULL;
    """,
    # 7: failed sign-ins per account and per client address (backoff), and who changed which account when.
    """
    CREATE TABLE sign_in_failures (
        kind TEXT NOT NULL CHECK (kind IN ('account', 'address')),
        key TEXT NOT NULL,
        failures INTEGER NOT NULL,
        window_start_ms INTEGER NOT NULL,
        last_failure_ms INTEGER NOT NULL,
        locked_until_ms INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    CREATE INDEX sign_in_failures_by_last ON sign_in_failures(last_failure_ms);
    CREATE TABLE account_changes (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL REFERENCES users(username),
        action TEXT NOT NULL,
        by_username TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    );
    CREATE INDEX account_changes_by_user ON account_changes(username, id);
    """,
    # 8: who revoked an enterprise's code (user, role, agency), beside why (revoked_reason).
    """
    ALTER TABLE issued_codes ADD COLUMN revoked_by TEXT;
    ALTER TABLE issued_codes ADD COLUMN revoked_role TEXT;
    ALTER TABLE issued_codes ADD COLUMN revoked_agency_id TEXT;
    """,
    # 9: events whose device time cannot be right (server/clocks.py), and each device's clock state for its alerts.
    """
    CREATE TABLE clock_suspects (
        event_id TEXT PRIMARY KEY REFERENCES events(event_id) ON DELETE CASCADE,
        device_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        device_time_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL
    );
    CREATE INDEX clock_suspects_by_device ON clock_suspects(device_id, received_ms);
    CREATE TABLE device_clocks (
        device_id TEXT PRIMARY KEY REFERENCES devices(device_id),
        registered_ms INTEGER NOT NULL,
        offset_ms INTEGER,
        alerted_ms INTEGER,
        ok_since_ms INTEGER
    );
    """,
    # 10: rejected messages keep a prefix of their bytes with the whole payload's size and SHA-256 (rows from
    # before keep their whole raw and a NULL sha256); per-reason totals that pruning and retention never lower.
    """
    ALTER TABLE rejected ADD COLUMN size INTEGER;
    ALTER TABLE rejected ADD COLUMN sha256 TEXT;
    UPDATE rejected SET size = LENGTH(raw);
    CREATE INDEX rejected_with_raw ON rejected(id) WHERE LENGTH(raw) > 0;
    CREATE TABLE rejected_counts (
        reason_code TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        last_ms INTEGER NOT NULL
    );
    INSERT INTO rejected_counts(reason_code, count, last_ms) SELECT reason_code, COUNT(*), MAX(received_ms) FROM rejected GROUP BY reason_code;
    """,
    # 11: the review queue looked up by inspection (is it a door others may join?) and by officer (how many wait).
    """
    CREATE INDEX exception_reviews_by_inspection ON exception_reviews(inspection_id);
    CREATE INDEX exception_reviews_by_officer ON exception_reviews(officer_id, status);
    """,
    # 12: failed sign-ins are also counted per (account, address) pair (server/auth.py): the CHECK allows 'pair'.
    """
    CREATE TABLE sign_in_failures_new (
        kind TEXT NOT NULL CHECK (kind IN ('account', 'address', 'pair')),
        key TEXT NOT NULL,
        failures INTEGER NOT NULL,
        window_start_ms INTEGER NOT NULL,
        last_failure_ms INTEGER NOT NULL,
        locked_until_ms INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    INSERT INTO sign_in_failures_new SELECT kind, key, failures, window_start_ms, last_failure_ms, locked_until_ms FROM sign_in_failures;
    DROP TABLE sign_in_failures;
    ALTER TABLE sign_in_failures_new RENAME TO sign_in_failures;
    CREATE INDEX sign_in_failures_by_last ON sign_in_failures(last_failure_ms);
    """,
]


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A SQLite connection with the server's settings (server/storage/engine.py ``sqlite_connect``)."""
    return sqlite_connect(path, readonly=readonly)


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT on a SQLite connection, rolled back on any error."""
    with sqlite_transaction(con):
        yield con


@contextmanager
def reading(db: str | Path) -> Iterator[Tx]:
    """A read-only connection to the database (a path or a ``postgresql://`` URL)."""
    with storage_for(db).reading() as tx:
        yield tx


@contextmanager
def writing(db: str | Path) -> Iterator[Tx]:
    """One write transaction on the database, committed at the end (rolled back on error)."""
    with storage_for(db).writing() as tx:
        yield tx


def migrate(path: str | Path) -> int:
    """Bring the schema up to date through the storage seam's Alembic history; returns the legacy schema version.

    A file of the old MIGRATIONS list is finished by it and stamped (server/storage/migrate.py, docs/storage-seam.md
    §3.3); ``PRAGMA user_version`` stays len(MIGRATIONS) for code that still reads it. A ``postgresql://`` URL
    runs the history on that database."""
    if backend_of(path) is Backend.POSTGRES:
        from server.storage.migrate import upgrade

        upgrade(str(path))
        return len(MIGRATIONS)
    if sqlite_file_is_current(path, len(MIGRATIONS)):  # the usual case, answered without importing Alembic
        return len(MIGRATIONS)
    from server.storage.migrate import migrate_sqlite  # Alembic and SQLAlchemy load only when there is work to do

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    connect(path).close()  # creates the file in WAL mode (persistent) before any migrating connection opens it
    migrate_sqlite(path, MIGRATIONS)
    return len(MIGRATIONS)
