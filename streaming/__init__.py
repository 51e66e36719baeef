"""ECE streaming package."""
