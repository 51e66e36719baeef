"""Audit log representations for admins."""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AuditEventOut(BaseModel):
    """``hash`` / ``prev_hash`` are the event's seal (null until the sealer reached it)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    actor_id: uuid.UUID | None
    action: str
    entity: str
    entity_id: str | None
    ip: str | None
    at: datetime
    seq: int | None = None
    prev_hash: str | None
    hash: str | None


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


class HeadOut(BaseModel):
    id: int | None  # the last sealed event (null before the first seal)
    seq: int
    hash: str


class AnchorOut(BaseModel):
    id: int | None  # the event the anchored head names
    seq: int
    hash: str
    signature: str
    slot: int
    at: datetime
    on_chain: bool | None  # the memo read back from Solana agrees; null if unreachable


class ChainVerification(BaseModel):
    ok: bool
    checked: int
    first_bad_id: int | None
    head: HeadOut
    anchor: AnchorOut | None
    unsealed: int
    problem: str | None
