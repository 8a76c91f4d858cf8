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
