"""Which console pages a user's roles offer (navigation only: the hub decides every call)."""

ROLE_PAGES: dict[str, tuple[str, ...]] = {
    "compliance_officer": ("overview", "events", "audit", "decisions", "incidents"),
    "admin": ("overview", "decisions", "deliveries", "policy"),
    "operator": ("overview",),
}
PAGE_ORDER = ("overview", "events", "audit", "decisions", "incidents", "deliveries", "policy")


def pages_for(roles: tuple[str, ...]) -> list[str]:
    """The pages a user with these roles is offered, in menu order."""
    allowed = {page for role in roles for page in ROLE_PAGES.get(role, ())}
    return [page for page in PAGE_ORDER if page in allowed]
