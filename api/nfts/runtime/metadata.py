"""What an NFT says about its card: the Arweave metadata document and the on-chain name.

Shared by the single-NFT and the batched saga steps so both publish the same bytes.
"""

from __future__ import annotations

from typing import Any

SYMBOL = "ECE"
MAX_ONCHAIN_NAME = 32  # the full name lives in the Arweave document; the mint tx is <= 1232 B


def metadata_document(card: dict[str, Any], image: str) -> dict[str, Any]:
    """The Arweave JSON (Metaplex-style fields, plus the card id that ties it to ECE)."""
    edition = f", {card['edition']}" if card.get("edition") else ""
    attributes: list[dict[str, Any]] = [
        {"trait_type": "set", "value": card["set_name"]},
        {"trait_type": "number", "value": card["number"]},
        {"trait_type": "rarity", "value": card["rarity"]},
    ]
    if card.get("edition"):
        attributes.append({"trait_type": "edition", "value": card["edition"]})
    for key, value in sorted((card.get("attributes") or {}).items()):
        attributes.append({"trait_type": str(key), "value": value})
    return {
        "name": card["name"],
        "symbol": SYMBOL,
        "description": (
            f"{card['name']}: {card['set_name']} #{card['number']} ({card['rarity']}{edition}), "
            "a card on Elite Card Exchange."
        ),
        "image": image,
        "attributes": attributes,
        "card_id": str(card["id"]),
    }


def onchain_name(name: str) -> str:
    return name if len(name) <= MAX_ONCHAIN_NAME else name[: MAX_ONCHAIN_NAME - 1] + "…"
