"""camera failures, and ids SQLite never reuses

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Tables whose integer ids other rows or the fleet refer to: SQLite hands out the id of the
# newest deleted row again unless the table is AUTOINCREMENT (a deleted camera's successor
# would restart its epochs under the same id). PostgreSQL sequences never go back.
ID_TABLES = (
    "api_keys",
    "workers",
    "cameras",
    "commands",
    "worker_events",
    "people",
    "faces",
    "sightings",
)


def upgrade() -> None:
    with op.batch_alter_table("camera_leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failures", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("backoff_until", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # Rebuilt with their data and ids (migrate.upgrade turns foreign keys off for this).
        for table in ID_TABLES:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ):
                pass


def downgrade() -> None:
    with op.batch_alter_table("camera_leases", schema=None) as batch_op:
        batch_op.drop_column("backoff_until")
        batch_op.drop_column("last_error")
        batch_op.drop_column("failures")
