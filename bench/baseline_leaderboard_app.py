"""Baseline for the leaderboard read: a bare FastAPI route doing one Redis ``ZREVRANGE``.

No service layer, no usernames, no ETag, no middleware: the floor that
``GET /leaderboards/traders`` is compared with, through the same uvicorn.
"""

from fastapi import FastAPI
from redis.asyncio import Redis

from ece.contracts import market_data as md
from ece.settings import get_settings

redis = Redis.from_url(get_settings().redis_url)
app = FastAPI()


@app.get("/leaderboards/{kind}")
async def read_leaderboard(kind: str, limit: int = 10) -> list[dict[str, object]]:
    rows = await redis.zrevrange(md.leaderboard_key(kind), 0, limit - 1, withscores=True)
    return [{"rank": rank, "user_id": member.decode(), "score": int(score)}
            for rank, (member, score) in enumerate(rows, start=1)]
