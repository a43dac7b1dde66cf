"""Deployment and operations: settings checks, start-up preflight, limits,
structured logs, resume data, backups (README "Deployment")."""
