"""The storage seam (issue 12, docs/storage-seam.md): one schema description and one migration history for SQLite
and PostgreSQL. Not wired into the server yet: server/db.py MIGRATIONS are still the live path."""
