"""OpenID Connect identities: which provider account signs in which user.

Revision ID: 0006
Revises: 0005

* ``oauth_identities``: ``(provider, subject)`` is unique (a provider account signs
  in one user) and so is ``(user_id, provider)`` (one account per provider and
  user); ``email`` is what the provider last said, for display only.
* Not captured: it stays out of the ``ece_cdc`` publication (no consumer needs it,
  and it holds personal data), like ``refresh_sessions`` and ``wallet_challenges``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_identities",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_oauth_identities_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_identities")),
        sa.UniqueConstraint("provider", "subject",
                            name=op.f("uq_oauth_identities_provider_subject")),
        sa.UniqueConstraint("user_id", "provider",
                            name=op.f("uq_oauth_identities_user_id_provider")),
    )


def downgrade() -> None:
    op.drop_table("oauth_identities")
