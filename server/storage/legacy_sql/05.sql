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
