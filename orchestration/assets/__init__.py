"""Assets by layer: bronze (landing), silver (and gold) from ``warehouse/<layer>/*.sql``."""
