"""ECE quality package."""
