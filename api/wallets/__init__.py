"""Self-custody wallets users link by signing a challenge (Sign-In-With-Solana style)."""
