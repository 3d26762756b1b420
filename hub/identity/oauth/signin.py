"""Sign-in of console users: password, TOTP, per-account throttling and lockouts.

Every failure reads the same (`invalid_grant`, no password oracle); attempts are counted per
name by `SigninThrottle` before the password is checked; the attempt that locks an account,
an admin's unlock and each static admin token made with a second factor are audited.
"""

import re
from datetime import datetime, timedelta

import pyotp

from hub.audit import AuditEntry
from hub.audit.schemas import Detail
from hub.identity.oauth import repository
from hub.identity.oauth.crypto import same, verify_secret
from hub.identity.oauth.errors import SIGNIN_FAILED, OAuthError, SigninThrottledError
from hub.identity.oauth.kit import IdentityKit
from hub.identity.oauth.lockout import Attempt, ThrottledError
from hub.identity.oauth.schemas import LockoutRead, UserRead
from hub.kit.clock import Clock, utcnow
from hub.kit.errors import ForbiddenError, NotFoundError, UnavailableError

ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_.@\-]{1,128}")  # as `AccountName` in schemas


async def _audit_alone(
    kit: IdentityKit, *, actor: str, action: str, target: str, detail: Detail, clock: Clock
) -> None:
    """An entry with nothing to commit beside it: through the process's appender, which
    shares a commit with concurrent ones and returns once it is in (ADR 0025)."""
    await kit.audit.append(
        AuditEntry(actor=actor, action=action, target=target, detail=detail), at=clock()
    )


async def sign_in(
    kit: IdentityKit, username: str, password: str, totp: str | None, *, clock: Clock = utcnow
) -> UserRead:
    """The active console user these credentials prove (password, and TOTP when enrolled).

    Every failure (unknown name, wrong password, disabled account, missing, wrong or replayed
    TOTP code) is the same `invalid_grant`; failures per name bring backoff, then a lockout
    (429 with Retry-After) that is checked before the password is."""
    attempt = await _begin_signin(kit, username)
    found = await repository.find_user(kit.db.pool, username)
    try:
        ok = await kit.hasher.run(verify_secret, None if found is None else found[0], password)
    except UnavailableError:
        await kit.throttle.refund(attempt)  # busy, not wrong: 503 without a failure counted
        raise
    user = found[2] if found is not None and ok and found[2].status == "active" else None
    if user is not None and found is not None and found[1] is not None:
        secret = kit.sealer.open(found[1], context=username).decode()
        user = user if await _totp_ok(kit, username, secret, totp, now=clock()) else None
    if user is None:
        await _signin_failed(kit, attempt, clock=clock)
        raise OAuthError("invalid_grant", SIGNIN_FAILED)
    await kit.throttle.succeeded(attempt.account)
    return user


async def confirm_admin_second_factor(
    kit: IdentityKit, username: str, password: str, totp: str, *, hours: int, clock: Clock = utcnow
) -> UserRead:
    """Sign an admin in with password and TOTP before a static admin token is made for them
    (audited `token.static_admin`); 403 for a user who is not an admin enrolled in TOTP."""
    user = await sign_in(kit, username, password, totp, clock=clock)
    if "admin" not in user.roles or not user.totp:
        raise ForbiddenError(
            "only an admin enrolled in TOTP may hold an admin token", code="second_factor_required"
        )
    await _audit_alone(
        kit,
        actor=f"user:{username}",
        action="token.static_admin",
        target=f"user:{username}",
        detail={"hours": hours, "second_factor": "totp"},
        clock=clock,
    )
    return user


async def _begin_signin(kit: IdentityKit, username: str) -> Attempt:
    """Count a sign-in attempt for this name (existing or not); 429 while it must wait."""
    if not ACCOUNT_NAME.fullmatch(username):
        raise OAuthError("invalid_grant", SIGNIN_FAILED)  # no account can have this name
    try:
        return await kit.throttle.begin(f"user:{username}")
    except ThrottledError as exc:
        raise SigninThrottledError(exc.retry_after) from None


async def _signin_failed(kit: IdentityKit, attempt: Attempt, *, clock: Clock) -> None:
    """Count the failure; the attempt that locks the account is audited."""
    if not await kit.throttle.failed(attempt):
        return
    await _audit_alone(
        kit,
        actor="hub",
        action="signin.locked",
        target=attempt.account,
        detail={"failures": attempt.number, "seconds": attempt.wait_ms // 1000},
        clock=clock,
    )


async def _totp_ok(
    kit: IdentityKit, username: str, secret: str, code: str | None, *, now: datetime
) -> bool:
    """True for a TOTP code of this, the previous or the next 30 s step, each step once."""
    if not code:
        return False
    totp = pyotp.TOTP(secret)
    for offset in (0, -1, 1):
        at = now + timedelta(seconds=offset * totp.interval)
        if same(totp.at(at), code.strip()[:10]):
            step = str(totp.timecode(at))
            return await kit.redis.claim_once(
                kit.redis.key("totp", username, step), ttl_seconds=3 * totp.interval
            )
    return False


async def list_lockouts(kit: IdentityKit) -> list[LockoutRead]:
    """Accounts locked now after too many failed sign-ins."""
    return await kit.throttle.locked()


async def unlock_account(
    kit: IdentityKit, account: str, *, actor: str, clock: Clock = utcnow
) -> None:
    """Forget an account's failed sign-ins and lift its lock (audited); 404 when it has none."""
    if not await kit.throttle.clear(account):
        raise NotFoundError(f"no failed sign-ins for {account!r}", code="lockout_not_found")
    await _audit_alone(
        kit, actor=actor, action="signin.unlock", target=account, detail={}, clock=clock
    )
