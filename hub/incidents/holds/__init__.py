"""Legal holds: what the retention sweep must keep, released only with four eyes."""

from hub.incidents.holds.schemas import HoldCreate, HoldRead
from hub.incidents.holds.service import add_hold, list_holds, release_hold

__all__ = ["HoldCreate", "HoldRead", "add_hold", "list_holds", "release_hold"]
