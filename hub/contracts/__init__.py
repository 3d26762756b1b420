"""Wire contracts shared with the edge; modules here import nothing else of the hub."""
