"""Cards: the catalogue, ownership history and valuations."""
