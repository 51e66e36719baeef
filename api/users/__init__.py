"""Users: accounts, roles and each user's platform custody address."""
