"""Timed English auctions with held bids and anti-sniping."""
