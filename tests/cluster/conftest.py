"""The cluster rig for the fault tests: built once per session by `scripts/cluster.sh up` and
removed afterwards (`HUB_CLUSTER_KEEP=1` leaves it up). They take minutes, so they run only
when asked (`HUB_CLUSTER_TESTS=1`, as `make cluster-test` does) and when the rig can be built
(root, `ip netns`); otherwise they skip and say why."""

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.cluster.kit import ROOT, cluster


def _why_not() -> str | None:
    if os.environ.get("HUB_CLUSTER_TESTS") != "1":
        return "cluster fault tests are opt-in: HUB_CLUSTER_TESTS=1 (make cluster-test)"
    if os.geteuid() != 0:
        return "the cluster rig needs root (network namespaces)"
    ip = shutil.which("ip")
    if ip is None:
        return "the cluster rig needs iproute2 (ip netns)"
    probe = subprocess.run([ip, "netns", "list"], capture_output=True, check=False)  # noqa: S603
    if probe.returncode != 0:
        return f"ip netns does not work here: {probe.stderr.decode().strip()}"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip every cluster test, with the reason printed, when the rig cannot be built; the
    promotion runs last (the rig has no replica after it)."""
    ours = ROOT / "tests" / "cluster"
    items.sort(key=lambda item: item.path.is_relative_to(ours) and "promoted" in item.name)
    reason = _why_not()
    if reason is None:
        return
    for item in items:
        if item.path.is_relative_to(ours):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def rig() -> Iterator[None]:
    """The rig, up; torn down at the end of the session."""
    cluster("up", timeout=600)
    yield
    if os.environ.get("HUB_CLUSTER_KEEP") != "1":
        cluster("down", timeout=120)
