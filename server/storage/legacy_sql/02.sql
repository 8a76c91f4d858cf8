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
