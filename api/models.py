"""Every table, imported once so ``Base.metadata`` is complete (Alembic, tests)."""

from api.auctions.models import Auction, Bid
from api.audit.models import AuditEvent
from api.auth.models import RefreshSession
from api.cards.models import Card, CardHistory, CardValuation
from api.core.db import Base
from api.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from api.market.models import Listing, Sale
from api.nfts.models import Nft, NftTransaction
from api.notifications.models import Notification, PushSubscription
from api.oauth.models import OAuthIdentity
from api.trades.models import TradeOffer, TradeOfferCard
from api.users.models import CustodyKey, User
from api.wallets.models import Wallet, WalletChallenge
from api.web.idempotency import IdempotencyKey

metadata = Base.metadata

__all__ = [
    "Auction",
    "AuditEvent",
    "Base",
    "Bid",
    "Card",
    "CardHistory",
    "CardValuation",
    "CustodyKey",
    "IdempotencyKey",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "Listing",
    "Nft",
    "NftTransaction",
    "Notification",
    "OAuthIdentity",
    "PushSubscription",
    "RefreshSession",
    "Sale",
    "TradeOffer",
    "TradeOfferCard",
    "User",
    "Wallet",
    "WalletChallenge",
    "metadata",
]
