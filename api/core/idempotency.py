"""Idempotency keys for POSTs that move money or ownership.

The row is inserted (status_code NULL) in the request's own transaction before the
work, so a concurrent duplicate blocks on the primary key and then sees the stored
answer; the answer is filled in before commit.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, created_at


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    response_body: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = created_at()
    expires_at: Mapped[datetime]
