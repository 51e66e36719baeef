"""Fixed-price marketplace: listings and sales."""
