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
