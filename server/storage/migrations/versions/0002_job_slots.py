"""Job runs claim their scheduled slot, and APScheduler's jobs live in the server's database (issue 12, §5.3).

``job_runs.slot_ms`` with a unique index on ``(job_id, slot_ms)``: a run starts with ``INSERT ... ON CONFLICT
DO NOTHING RETURNING id``, so two schedulers (a stalled leader and its successor) never run one slot twice. Rows
recorded before have no slot (NULL, which a unique index lets repeat on both backends).
``apscheduler_jobs`` is the table APScheduler's SQLAlchemyJobStore would create beside the database; here it is
part of the schema, so every scheduler of a cluster shares it and no side file is needed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
FLOAT = sa.Double().with_variant(sa.REAL(), "sqlite")

revision = "0002_job_slots"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the slot column and its unique index; create the job store's table."""
    op.add_column("job_runs", sa.Column("slot_ms", INT, nullable=True))
    op.create_index("job_runs_by_slot", "job_runs", ["job_id", "slot_ms"], unique=True)
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("next_run_time", FLOAT, nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("apscheduler_jobs_pkey")),
    )
    op.create_index("apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    """Not supported, as for the baseline: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
