"""Webhook signing secrets sealed at rest: `webhook_endpoint.secret` becomes `bytea`.

New secrets are sealed under the tenant's data key (`privacy.service.Sealer`, field
`webhook_endpoint.secret`), as the callback secrets are since 0011. Rows written before
this revision keep their secret as its UTF-8 bytes; the service still reads those (a value
that is not sealed is taken as is) until the endpoint is recreated. Downgrade turns only
such unsealed values back into text, and refuses while a sealed one exists (it would be
lost).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE webhook_endpoint ALTER COLUMN secret TYPE bytea "
        "USING convert_to(secret, 'UTF8')"
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (
                SELECT FROM webhook_endpoint
                WHERE substring(secret FROM 1 FOR 6) <> convert_to('whsec_', 'UTF8')
            ) THEN
                RAISE EXCEPTION 'webhook secrets are sealed; downgrading would lose them';
            END IF;
        END $$
        """
    )
    op.execute(
        "ALTER TABLE webhook_endpoint ALTER COLUMN secret TYPE text "
        "USING convert_from(secret, 'UTF8')"
    )
