"""The `hub` command: run the services, migrate, manage edge nodes, verify the audit chain."""

from hub.cli.main import main

__all__ = ["main"]
