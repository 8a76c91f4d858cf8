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
