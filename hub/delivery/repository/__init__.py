"""SQL of agencies, the delivery ledger and attempts; the only code that queries them.

One module per part: `agencies` (settings and status), `ledger` (planned, claimed, finished,
due), `ordered` (FIFO agencies' numbering and head claims, ADR 0019) and `listings` (what
operators read, and replay). Callers use the names below.
"""

from hub.delivery.repository.agencies import (
    find_agency,
    insert_agency,
    lock_agency_configs,
    select_agencies,
    set_agency_status,
    update_agency_config,
    update_agency_ordering,
)
from hub.delivery.repository.ledger import (
    Claimed,
    Finish,
    backlog,
    claim_batch,
    due_agencies,
    due_of_agency,
    finish_batch,
    next_due_in,
    plan_of_inserted,
    release_claims,
)
from hub.delivery.repository.listings import (
    attempts_of,
    get_delivery,
    list_deliveries,
    replay,
    status_counts,
)
from hub.delivery.repository.ordered import (
    blocked_heads,
    claim_heads,
    lock_agency_order,
    next_head_due_in,
    number_open,
)

__all__ = [
    "Claimed",
    "Finish",
    "attempts_of",
    "backlog",
    "blocked_heads",
    "claim_batch",
    "claim_heads",
    "due_agencies",
    "due_of_agency",
    "find_agency",
    "finish_batch",
    "get_delivery",
    "insert_agency",
    "list_deliveries",
    "lock_agency_configs",
    "lock_agency_order",
    "next_due_in",
    "next_head_due_in",
    "number_open",
    "plan_of_inserted",
    "release_claims",
    "replay",
    "select_agencies",
    "set_agency_status",
    "status_counts",
    "update_agency_config",
    "update_agency_ordering",
]
