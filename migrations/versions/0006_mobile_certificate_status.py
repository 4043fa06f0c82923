"""mobile-certificate revocation status, CRL and OCSP

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 00:00:00.000000

Certificates of devices already revoked become revoked (reason unspecified: why is not known), those of
suspended devices go on hold. The first CRL is signed on first use (or by ``flask mobile-certificates
reissue``, which also gives the certificates issued before this their status URLs).
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('mobile_certificates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revocation_reason', sa.String(length=32), nullable=True))

    op.create_table('mobile_crls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issuer_key_id', sa.String(length=64), nullable=False),
    sa.Column('crl_number', sa.Integer(), nullable=False),
    sa.Column('this_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mobile_crls')),
    sa.UniqueConstraint('issuer_key_id', name=op.f('uq_mobile_crls_issuer_key_id'))
    )

    now = datetime.now(timezone.utc).replace(microsecond=0)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # UTC, as the models store it there
    of_status = "SELECT id FROM devices WHERE status = :status"
    op.get_bind().execute(
        sa.text(
            "UPDATE mobile_certificates SET revocation_reason = 'unspecified', revoked_at = COALESCE("
            "(SELECT revoked_at FROM devices WHERE devices.id = mobile_certificates.device_id), :now) "
            f"WHERE device_id IN ({of_status})"
        ).bindparams(sa.bindparam("now", now, type_=sa.DateTime(timezone=True)), status="revoked")
    )
    op.get_bind().execute(
        sa.text(
            "UPDATE mobile_certificates SET revocation_reason = 'certificateHold', revoked_at = :now "
            f"WHERE device_id IN ({of_status})"
        ).bindparams(sa.bindparam("now", now, type_=sa.DateTime(timezone=True)), status="suspended")
    )


def downgrade():
    op.drop_table('mobile_crls')
    with op.batch_alter_table('mobile_certificates', schema=None) as batch_op:
        batch_op.drop_column('revocation_reason')
        batch_op.drop_column('revoked_at')
