"""Register what the cluster rig's load needs, once: the edge node (its key kept in the edge
folder) owning camera `demo-cam-1` (jurisdiction north), and `police-north` as a REST webhook
on the demo agency. Run by scripts/cluster.sh in an API host's namespace with the rig's
HUB_* settings; a second run changes nothing."""

import argparse
import asyncio
import json
from pathlib import Path

from edge.signing import generate_key, private_key_pem, public_key_pem
from hub.delivery.agencies import add_agency, get_agency
from hub.delivery.schemas import AgencyCreate, Subscription
from hub.identity import CameraCreate, NodeCreate, add_node
from hub.kit.errors import NotFoundError
from hub.runtime import Services, build_services, start_services, stop_services
from hub.settings import load_settings

ACTOR = "cli:cluster-rig"
CAMERA = "demo-cam-1"


async def ensure_agency(services: Services, *, url: str, secret: str) -> None:
    """Register police-north (REST) at `url` unless it exists."""
    try:
        await get_agency(services.db, "police-north")
        return
    except NotFoundError:
        pass
    await add_agency(
        services.db,
        services.delivery.adapters,
        AgencyCreate(
            name="police-north",
            kind="rest",
            config={"url": url, "secrets": [secret], "timeout_seconds": 5},
            subscription=Subscription(purpose="investigation", cameras=[CAMERA]),
            jurisdictions=["north"],
            clearance=3,
            max_concurrency=20,
            rate_per_second=10_000,
        ),
        actor=ACTOR,
    )


async def ensure_node(services: Services, folder: Path) -> None:
    """Register the rig's edge node unless `folder/node.json` says it exists."""
    record = folder / "node.json"
    if record.exists():
        return
    key = generate_key()
    node = await add_node(
        services.db,
        NodeCreate(
            name="cluster-edge",
            public_key=public_key_pem(key),
            cameras=[CameraCreate(camera_id=CAMERA, jurisdiction="north")],
        ),
        actor=ACTOR,
    )
    key_file = folder / "node.key"
    key_file.write_text(private_key_pem(key), encoding="utf-8")
    key_file.chmod(0o600)
    record.write_text(json.dumps({"node_id": str(node.id), "camera": CAMERA}), encoding="utf-8")


async def main() -> None:
    """Seed the rig's database."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agency-url", required=True)
    parser.add_argument("--secret-file", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    services = build_services(load_settings())
    await start_services(services)
    try:
        secret = args.secret_file.read_text(encoding="utf-8").strip()
        await ensure_agency(services, url=args.agency_url, secret=secret)
        await ensure_node(services, args.out)
    finally:
        await stop_services(services)


if __name__ == "__main__":
    asyncio.run(main())
