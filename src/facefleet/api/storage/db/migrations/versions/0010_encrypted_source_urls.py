"""camera source URLs encrypted at rest

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from facefleet.api.storage.db.encryption import cipher_of, decrypt, encrypt, is_encrypted

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The column's type is unchanged (text); only what it holds is.
CAMERAS = sa.table("cameras", sa.column("id", sa.Integer()), sa.column("source_url", sa.Text()))
SET_URL = (
    sa.update(CAMERAS)
    .where(CAMERAS.c.id == sa.bindparam("row"))
    .values(source_url=sa.bindparam("url"))
)


def _rows() -> list[tuple[int, str]]:
    rows = op.get_bind().execute(sa.select(CAMERAS.c.id, CAMERAS.c.source_url)).all()
    return [(row, url) for row, url in rows]


def upgrade() -> None:
    rows = _rows()
    if not rows:
        return  # a database without cameras migrates without a key
    bind = op.get_bind()
    cipher = cipher_of(bind.dialect)
    # A value that already decrypts was encrypted by an earlier, interrupted run.
    changed = [
        {"row": row, "url": encrypt(cipher, url)}
        for row, url in rows
        if not is_encrypted(cipher, url)
    ]
    if changed:
        bind.execute(SET_URL, changed)


def downgrade() -> None:
    rows = _rows()
    if not rows:
        return
    bind = op.get_bind()
    cipher = cipher_of(bind.dialect)
    bind.execute(SET_URL, [{"row": row, "url": decrypt(cipher, url)} for row, url in rows])
