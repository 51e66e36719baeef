"""Market data: card prices, market stats and leaderboards, served from the Redis hot set
kept by the stream (``ece.contracts.market_data``), or computed from Postgres when the
hot set is not there."""
