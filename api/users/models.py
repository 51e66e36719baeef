"""Users and their custody keys.

Email is stored lowercased (a CHECK refuses anything else) so the plain unique index
is case-insensitive; usernames keep the case the user typed and are unique on
``lower(username)``. Secret key material lives only in ``custody_keys``, a table
that is not in the CDC publication.
"""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, created_at, updated_at, uuid_pk

ROLES = ("user", "admin")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint("role IN ('user', 'admin')", name="role"),
        CheckConstraint("length(username) BETWEEN 3 AND 32", name="username_length"),
        Index("uq_users_username_lower", text("lower(username)"), unique=True),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    username: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), server_default="user", default="user")
    custody_address: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class CustodyKey(Base):
    """The encrypted secret key of a user's custody address (AES-256-GCM envelope)."""

    __tablename__ = "custody_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), unique=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at()
