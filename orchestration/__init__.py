"""ECE orchestration package."""
