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
