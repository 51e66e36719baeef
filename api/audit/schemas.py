"""Audit log representations for admins."""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    actor_id: uuid.UUID | None
    action: str
    entity: str
    entity_id: str | None
    ip: str | None
    at: datetime
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


class ChainVerification(BaseModel):
    ok: bool
    checked: int
    first_bad_id: int | None
