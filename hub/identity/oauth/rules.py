"""Pure rules of sign-in throttling: how long an account waits after its n-th failed attempt."""

from typing import Final

from msgspec import Struct

FREE_ATTEMPTS: Final = 4  # failures that cost nothing (typos happen)
BASE_DELAY_SECONDS: Final = 1  # the 5th failure waits 1 s, the 6th 2 s, then 4 s, 8 s ...
LOCK_AFTER: Final = 10  # from the 10th failure on, the account is locked
LOCK_SECONDS: Final = 15 * 60  # for this long (per failure past LOCK_AFTER)
FORGET_SECONDS: Final = 24 * 3600  # failures are forgotten a day after the last one


class Throttle(Struct, frozen=True, kw_only=True):
    """The delays that apply to one account (the defaults above; tests may shorten them)."""

    free_attempts: int = FREE_ATTEMPTS
    base_delay_seconds: float = BASE_DELAY_SECONDS
    lock_after: int = LOCK_AFTER
    lock_seconds: int = LOCK_SECONDS
    forget_seconds: int = FORGET_SECONDS

    def delay_after(self, failures: int) -> float:
        """Seconds before the next attempt after `failures` failed ones: nothing for the
        first few, then doubling, then a flat lockout."""
        if failures <= self.free_attempts:
            return 0.0
        if failures >= self.lock_after:
            return float(self.lock_seconds)
        doubling = float(self.base_delay_seconds * 2 ** (failures - self.free_attempts - 1))
        return min(float(self.lock_seconds), doubling)

    def locks(self, failures: int) -> bool:
        """True when this many failures lock the account (audited, counted, listed)."""
        return failures >= self.lock_after
