"""The pinning middleware: one HTTP request decides with one engine even when a bundle is
activated between its decisions (the guard's authz, then the handler's)."""

from typing import Any

import msgspec
from litestar import Litestar, get
from litestar.middleware import DefineMiddleware
from litestar.testing import AsyncTestClient

from hub.policy.pinning import PolicyPinMiddleware
from hub.policy.schemas import AuthzResult
from hub.policy.service import PolicyService
from tests.hub.policy.test_service import ListSink, NamedEngine, authz_input


def app_swapping_mid_request(policy: PolicyService) -> Litestar:
    async def decide() -> str:
        result, _ = await policy.decide(
            "hub/authz/decision", authz_input(roles=[]), result_type=AuthzResult
        )
        return result.reason

    @get("/swap")
    async def swap() -> dict[str, Any]:
        before = await decide()
        policy.activate(NamedEngine(f"after-{before}"))
        return {"before": before, "after": await decide()}

    return Litestar(
        route_handlers=[swap], middleware=[DefineMiddleware(PolicyPinMiddleware, policy=policy)]
    )


async def test_a_request_keeps_its_engine_and_the_next_one_sees_the_new_bundle() -> None:
    policy = PolicyService(NamedEngine("first"), sink=ListSink(), eval_budget_ms=1000)
    async with AsyncTestClient(app_swapping_mid_request(policy)) as client:
        first = msgspec.json.decode((await client.get("/swap")).content)
        second = msgspec.json.decode((await client.get("/swap")).content)
    assert first == {"before": "first", "after": "first"}
    assert second == {"before": "after-first", "after": "after-first"}
