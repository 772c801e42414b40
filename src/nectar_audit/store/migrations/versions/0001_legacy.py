"""The schema nectar-audit wrote before the store had versions (``create_all`` by every writer).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A store written by that code already has these tables: then this step changes nothing.
    meta = sa.MetaData()
    sa.Table("runs", meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("created", sa.String(40), nullable=False),
             sa.Column("tool_version", sa.String(40), nullable=False))
    sa.Table("run_hosts", meta,
             sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
             sa.Column("host", sa.Text, primary_key=True),
             sa.Column("hostname", sa.Text, nullable=True),
             sa.Column("error", sa.Text, nullable=True))
    sa.Table("run_checks", meta,
             sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
             sa.Column("host", sa.Text, primary_key=True),
             sa.Column("check_id", sa.String(60), primary_key=True),
             sa.Column("status", sa.String(20), nullable=False),
             sa.Column("summary", sa.Text, nullable=False),
             sa.Column("waived", sa.Boolean, nullable=False))
    meta.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    raise NotImplementedError("the history store is not downgraded")
