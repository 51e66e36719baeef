"""Creating users (registration and the admin CLI share this) and changing roles.

A new user is complete in one transaction: the row, a custody keypair (secret key
envelope-encrypted, only in ``custody_keys``), two ledger accounts and an audit
event. Uniqueness races are settled by the database's unique indexes, not by a
prior SELECT, so two concurrent registrations cannot both win.
"""

import uuid

from solders.keypair import Keypair
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.core.crypto import custody_cipher
from api.core.problems import conflict
from api.core.security import hash_password
from api.core.uow import UnitOfWork
from api.ledger.service import open_user_accounts
from api.users.models import CustodyKey, User
from ece.settings import get_settings

DUPLICATE_DETAILS = {
    "uq_users_email": "email already registered",
    "uq_users_username_lower": "username already taken",
}


def _duplicate_detail(exc: IntegrityError) -> str:
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    return DUPLICATE_DETAILS.get(constraint or "", "user already exists")


async def create_user(
    session: AsyncSession,
    ctx: AuditContext,
    *,
    email: str,
    username: str,
    password: str,
    role: str = "user",
) -> User:
    """Insert a user with custody key and ledger accounts (caller commits)."""
    password_hash = await hash_password(password)
    keypair = Keypair()
    address = str(keypair.pubkey())
    user = User(
        id=uuid.uuid4(),
        email=email.strip().lower(),
        username=username,
        password_hash=password_hash,
        role=role,
        custody_address=address,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise conflict(_duplicate_detail(exc)) from exc
    cipher = custody_cipher(get_settings())
    session.add(
        CustodyKey(
            user_id=user.id,
            address=address,
            secret_enc=cipher.seal(bytes(keypair), aad=str(user.id).encode()),
            key_id=cipher.key_id,
        )
    )
    await open_user_accounts(session, user.id)
    actor = AuditContext(actor_id=ctx.actor_id or user.id, ip=ctx.ip)
    await record(
        session, actor, "user.register", "user", user.id, {"username": username, "role": role}
    )
    return user


async def register_user(
    uow: UnitOfWork, ctx: AuditContext, *, email: str, username: str, password: str
) -> User:
    """Public registration, in the request's unit of work."""
    return await create_user(uow.session, ctx, email=email, username=username, password=password)


async def set_role(session: AsyncSession, ctx: AuditContext, user: User, role: str) -> User:
    """Change a role with its audit event (caller commits)."""
    old = user.role
    user.role = role
    await session.flush()
    await record(session, ctx, "user.role_changed", "user", user.id, {"from": old, "to": role})
    return user


async def create_admin(
    session: AsyncSession, ctx: AuditContext, *, email: str, username: str, password: str
) -> User:
    """``ece admin create``: a regular registration, then the admin role, atomically.

    An operation of its own (the CLI, the seed and test fixtures call it with a bare
    session), so it opens and commits its unit of work here."""
    async with UnitOfWork(session):
        user = await create_user(session, ctx, email=email, username=username, password=password)
        await set_role(session, AuditContext(actor_id=ctx.actor_id, ip=ctx.ip), user, "admin")
    return user


async def load_custody_secret(session: AsyncSession, user_id: uuid.UUID) -> bytes:
    """The user's 64-byte custody secret key, decrypted (for signing workers only)."""
    row = await session.scalar(select(CustodyKey).where(CustodyKey.user_id == user_id))
    if row is None:
        raise LookupError(f"no custody key for user {user_id}")
    return custody_cipher(get_settings()).open(row.secret_enc, aad=str(user_id).encode())
