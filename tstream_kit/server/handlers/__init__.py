"""Tornado request handlers: thin adapters from HTTP to the Kit."""
