"""The storage seam (issue 12, docs/storage-seam.md): one schema description and one migration history for SQLite
and PostgreSQL. server/db.py migrate() runs this history; the server's queries have not moved here yet."""
