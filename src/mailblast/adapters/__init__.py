"""Adapters: the ports implemented with PostgreSQL, AWS, or in memory."""
