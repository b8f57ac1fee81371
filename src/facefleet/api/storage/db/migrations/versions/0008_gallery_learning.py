"""gallery learning: strangers, negative examples, sighting embeddings, retention, audit

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SIGHTING_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PENDING = sa.text("clustering = 'pending'")
# Ids SQLite never hands out again (see 0005), for the new tables and a rebuilt sightings.
NEVER_REUSED = {"sqlite_autoincrement": True}


def upgrade() -> None:
    # Never rebuilt on SQLite: dropping the old tenants table would cascade to everything.
    with op.batch_alter_table("tenants", schema=None, recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("match_ratio", sa.Float(), server_default="0.8", nullable=False)
        )
        batch_op.add_column(sa.Column("sighting_retention_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("crop_retention_days", sa.Integer(), nullable=True))

    op.create_table(
        "strangers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("centroid", sa.LargeBinary(), nullable=True),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("sightings", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_strangers_person_id_people"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_strangers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strangers")),
        **NEVER_REUSED,
    )
    with op.batch_alter_table("strangers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_strangers_person_id"), ["person_id"], unique=False)
        batch_op.create_index("ix_strangers_tenant_seen", ["tenant_id", "last_seen"], unique=False)

    # Before anything references sightings: on SQLite this may rebuild the table.
    with op.batch_alter_table("sightings", schema=None, table_kwargs=NEVER_REUSED) as batch_op:
        batch_op.add_column(sa.Column("embedding", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("stranger_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("clustering", sa.String(length=16), server_default="done", nullable=False)
        )
        batch_op.add_column(
            sa.Column("operator_label", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_sightings_stranger_id_strangers"),
            "strangers",
            ["stranger_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(
            "ix_sightings_stranger_time", ["stranger_id", "first_seen"], unique=False
        )
        batch_op.create_index(
            "ix_sightings_pending",
            ["id"],
            unique=False,
            sqlite_where=PENDING,
            postgresql_where=PENDING,
        )
    # Unknown faces seen before this version join strangers too.
    op.execute(
        "UPDATE sightings SET clustering = 'pending' WHERE person_id IS NULL AND crop IS NOT NULL"
    )

    with op.batch_alter_table("faces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sighting_id", SIGHTING_ID, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_faces_sighting_id_sightings"),
            "sightings",
            ["sighting_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(batch_op.f("ix_faces_sighting_id"), ["sighting_id"], unique=False)

    op.create_table(
        "negative_examples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("sighting_id", SIGHTING_ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_negative_examples_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sighting_id"],
            ["sightings.id"],
            name=op.f("fk_negative_examples_sighting_id_sightings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_negative_examples_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_negative_examples")),
        **NEVER_REUSED,
    )
    with op.batch_alter_table("negative_examples", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_negative_examples_person_id"), ["person_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_negative_examples_sighting_id"), ["sighting_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_negative_examples_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "gallery_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("stranger_id", sa.Integer(), nullable=True),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_gallery_audit_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gallery_audit")),
        **NEVER_REUSED,
    )
    with op.batch_alter_table("gallery_audit", schema=None) as batch_op:
        batch_op.create_index("ix_gallery_audit_tenant", ["tenant_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gallery_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_gallery_audit_tenant")
    op.drop_table("gallery_audit")

    with op.batch_alter_table("negative_examples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_negative_examples_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_negative_examples_sighting_id"))
        batch_op.drop_index(batch_op.f("ix_negative_examples_person_id"))
    op.drop_table("negative_examples")

    with op.batch_alter_table("faces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_faces_sighting_id"))
        batch_op.drop_constraint(batch_op.f("fk_faces_sighting_id_sightings"), type_="foreignkey")
        batch_op.drop_column("sighting_id")

    with op.batch_alter_table("sightings", schema=None, table_kwargs=NEVER_REUSED) as batch_op:
        batch_op.drop_index("ix_sightings_pending")
        batch_op.drop_index("ix_sightings_stranger_time")
        batch_op.drop_constraint(
            batch_op.f("fk_sightings_stranger_id_strangers"), type_="foreignkey"
        )
        batch_op.drop_column("operator_label")
        batch_op.drop_column("clustering")
        batch_op.drop_column("stranger_id")
        batch_op.drop_column("embedding")

    with op.batch_alter_table("strangers", schema=None) as batch_op:
        batch_op.drop_index("ix_strangers_tenant_seen")
        batch_op.drop_index(batch_op.f("ix_strangers_person_id"))
    op.drop_table("strangers")

    # SQLite 3.35 and later drop a column in place (see upgrade).
    with op.batch_alter_table("tenants", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("crop_retention_days")
        batch_op.drop_column("sighting_retention_days")
        batch_op.drop_column("match_ratio")
