"""Alembic migrations of the ECE schema (see ``runner.upgrade_to_head``)."""
