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
