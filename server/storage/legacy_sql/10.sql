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
