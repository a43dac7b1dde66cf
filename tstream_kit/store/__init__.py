"""Persistent state: watch history (PostgreSQL or SQLite) and caches."""
