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
