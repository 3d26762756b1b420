"""Piccolo migrations for the hub (one app, `hub`); SQL bodies live in `migrations/sql/`."""
