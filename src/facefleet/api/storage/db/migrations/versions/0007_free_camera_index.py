"""free cameras found by index

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FREE = "worker_pk IS NULL AND enabled"


def upgrade() -> None:
    # What the choice of a free camera filters and sorts on, beside the lease itself, so
    # one index walk finds the best free camera however many there are.
    with op.batch_alter_table("camera_leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tenant_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    op.execute(
        "UPDATE camera_leases SET tenant_id = (SELECT tenant_id FROM cameras"
        " WHERE cameras.id = camera_leases.camera_id),"
        " priority = (SELECT priority FROM cameras WHERE cameras.id = camera_leases.camera_id),"
        " enabled = (SELECT enabled FROM cameras WHERE cameras.id = camera_leases.camera_id)"
    )
    with op.batch_alter_table("camera_leases", schema=None) as batch_op:
        batch_op.alter_column("tenant_id", existing_type=sa.String(length=64), nullable=False)
    op.create_index(
        "ix_camera_leases_free",
        "camera_leases",
        ["tenant_id", sa.text("priority DESC"), "waiting_since", "camera_id"],
        postgresql_where=sa.text(FREE),
        sqlite_where=sa.text(FREE),
    )
    op.create_index(
        "ix_camera_leases_sticky",
        "camera_leases",
        ["last_worker_pk"],
        postgresql_where=sa.text(FREE),
        sqlite_where=sa.text(FREE),
    )


def downgrade() -> None:
    op.drop_index("ix_camera_leases_sticky", table_name="camera_leases")
    op.drop_index("ix_camera_leases_free", table_name="camera_leases")
    with op.batch_alter_table("camera_leases", schema=None) as batch_op:
        batch_op.drop_column("enabled")
        batch_op.drop_column("priority")
        batch_op.drop_column("tenant_id")
