"""The outbox's write order: `event.written`, an identity, breaks ties of `time`.

Events written by one statement (a coalesced reservation round writes dozens) may share a
microsecond of `clock_timestamp()`; the relay numbered such ties by their random ids, so
two events about one subject could be numbered out of the order they were written.
`written` (one shared identity sequence: nextval takes no row lock, so writers of unrelated
events do not wait on each other) is taken in the order the rows are inserted, and the
relay now numbers by `(time, written)`.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE event ADD COLUMN written bigint GENERATED ALWAYS AS IDENTITY")
    op.execute("DROP INDEX ix_event_unsequenced")
    op.execute(
        "CREATE INDEX ix_event_unsequenced ON event (tenant_id, time, written) "
        "WHERE sequence IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_event_unsequenced")
    op.execute(
        "CREATE INDEX ix_event_unsequenced ON event (tenant_id, time, id) WHERE sequence IS NULL"
    )
    op.execute("ALTER TABLE event DROP COLUMN written")
