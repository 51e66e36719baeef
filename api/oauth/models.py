"""Identities at OpenID providers linked to ECE users.

A provider names a person by its ``sub`` claim, stable for the life of the account,
while emails change and can be reassigned: so ``(provider, subject)`` is the key a
sign-in resolves, never the email. One identity per provider and user keeps "which
Google account signs me in" unambiguous. The email is what the provider said when
the identity was last used (shown to the user; never used to find an account).
Not in the CDC publication: nothing downstream needs it and it is personal data.
"""

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, created_at, uuid_pk


class OAuthIdentity(Base):
    __tablename__ = "oauth_identities"
    __table_args__ = (
        UniqueConstraint("provider", "subject"),
        UniqueConstraint("user_id", "provider"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    provider: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = created_at()
