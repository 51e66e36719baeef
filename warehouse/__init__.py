"""ECE warehouse package."""
