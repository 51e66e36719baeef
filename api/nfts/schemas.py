"""NFT bodies (contract: NFTs). Minting is asynchronous, so the NFT carries its saga
``status`` and, once ``failed``, the reason in ``error`` (null otherwise)."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

NftStatus = Literal["pending", "uploading", "minting", "minted", "failed"]


class NftOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    card_id: uuid.UUID
    status: NftStatus
    mint_address: str | None
    metadata_uri: str | None
    tx_signature: str | None
    owner_address: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
