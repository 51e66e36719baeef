"""``/me``: the authenticated user's own profile."""

from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth.deps import current_user
from api.core.problems import problem_responses
from api.users.models import User
from api.users.schemas import MeOut

router = APIRouter(tags=["users"])


@router.get("/me", response_model=MeOut, responses=problem_responses(401))
async def me(user: Annotated[User, Depends(current_user)]) -> User:
    return user
