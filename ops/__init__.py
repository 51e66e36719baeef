"""Operations: the `ece` command, the local stack supervisor, seed, demo and the local Solana node.

The top floor: it may import every package of the project; nothing but ops and
the tests imports it.
"""
