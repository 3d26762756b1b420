"""Business-free helpers shared by every domain: errors, database, Redis, clock, logging."""
