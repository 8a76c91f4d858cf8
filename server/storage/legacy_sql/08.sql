ALTER TABLE issued_codes ADD COLUMN revoked_by TEXT;
ALTER TABLE issued_codes ADD COLUMN revoked_role TEXT;
ALTER TABLE issued_codes ADD COLUMN revoked_agency_id TEXT;
