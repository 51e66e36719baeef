"""NFTs minted for cards and their on-chain transfers."""
