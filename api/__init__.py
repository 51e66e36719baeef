"""ECE api package."""
