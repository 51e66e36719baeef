"""Authentication: registration, password login, token refresh and logout."""
