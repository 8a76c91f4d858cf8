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
