"""Card-for-card trade offers between two users."""
