"""Portable column types and the one MetaData every table of the schema belongs to."""

from __future__ import annotations

from sqlalchemy import BigInteger, Double, Integer, LargeBinary, MetaData, Text
from sqlalchemy.dialects.sqlite import REAL

#: Constraint names the same on both backends (PostgreSQL's own naming style), so a later revision can name them.
NAMING_CONVENTION = {
    "ix": "%(table_name)s_%(column_0_N_name)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: Every integer: SQLite's are 64-bit, so PostgreSQL gets BIGINT (epoch ms, counts, sequence numbers alike);
#: SQLite keeps the declared type INTEGER, which an `INTEGER PRIMARY KEY` needs to be the rowid alias.
Int = BigInteger().with_variant(Integer(), "sqlite")
#: Latitude and longitude: double precision on PostgreSQL (its REAL is 4 bytes), REAL (8 bytes) on SQLite.
Float = Double().with_variant(REAL(), "sqlite")
#: Signed bytes and hashes: BLOB on SQLite, BYTEA on PostgreSQL.
Bytes = LargeBinary()
#: Every string is TEXT on both backends.
Str = Text()
