"""user accounts for sign-in

A `user_account` table for Flask-Login: the address as typed (lower-cased) and its canonical key, both unique, an
Argon2 password hash and a role (producer or customer). Nothing to fill in: the shop had no accounts before.

Revision ID: 33cbfb072ea6
Revises: 289ef7ed6b41
Create Date: 2026-11-29 23:20:35.937845

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '33cbfb072ea6'
down_revision = '289ef7ed6b41'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('user_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_key', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('producer', 'customer')", name=op.f('ck_user_account_role_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_account')),
    sa.UniqueConstraint('email', name=op.f('uq_user_account_email')),
    sa.UniqueConstraint('email_key', name=op.f('uq_user_account_email_key'))
    )


def downgrade():
    op.drop_table('user_account')
