"""Shapes of text and numbers accepted at the HTTP boundary, so they are in the OpenAPI
document and refused there (4xx) instead of failing in PostgreSQL (500).

PostgreSQL's text cannot hold NUL, its bigint stops at 2^63 - 1 and its uuid parser takes
36 hex digits without hyphens as "more than 16 bytes": every one of these answered 500.
"""

from typing import Annotated

from litestar.params import PathParameter

# Any text without NUL (U+0000), which PostgreSQL text and jsonb cannot store.
NO_NUL = r"^[^\x00]*$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
INT64_MAX = 2**63 - 1

Position = Annotated[
    int, PathParameter(ge=1, le=INT64_MAX, description="A log position (1 to 2^63 - 1)")
]
