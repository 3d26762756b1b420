"""Admin routes of the camera registry under `/v1/admin` (policy-guarded: admins only).

A camera belongs to one edge node; ingest accepts its events only from that node and takes
its jurisdiction from here. Every change is audited by the use cases.
"""

from typing import Annotated, Any

from litestar import Request, Response, Router, delete, get, post
from litestar.params import JSONBody, PathParameter

from hub.identity.schemas import CameraCreate, CameraRead, Subject
from hub.identity.service import add_camera, list_cameras, remove_camera
from hub.kit.params import NO_NUL
from hub.policy.guard import current_subject
from hub.runtime import ServicesDep

AnyRequest = Request[Any, Any, Any]
NodeRef = Annotated[
    str, PathParameter(max_length=128, pattern=NO_NUL, description="Edge node name or id")
]
CameraRef = Annotated[str, PathParameter(max_length=128, pattern=NO_NUL, description="Camera id")]


def _actor(request: AnyRequest) -> str:
    subject: Subject = current_subject(request)
    return f"{subject.kind}:{subject.id}"


async def get_all_cameras(services: ServicesDep) -> list[CameraRead]:
    """Every registered camera with its node and jurisdiction."""
    return await list_cameras(services.db)


async def get_node_cameras(services: ServicesDep, node: NodeRef) -> list[CameraRead]:
    """The cameras one node owns."""
    return await list_cameras(services.db, node)


async def post_camera(
    request: AnyRequest, services: ServicesDep, node: NodeRef, data: JSONBody[CameraCreate]
) -> Response[CameraRead]:
    """Register a camera to a node (409 `camera_exists` when another node owns it)."""
    camera = await add_camera(services.db, node, data, actor=_actor(request))
    return Response(camera, status_code=201)


async def delete_camera(
    request: AnyRequest, services: ServicesDep, node: NodeRef, camera_id: CameraRef
) -> CameraRead:
    """Unregister a node's camera; its events are rejected within 5 s (ADR 0024)."""
    return await remove_camera(services.db, node, camera_id, actor=_actor(request))


def build_router() -> Router:
    """The camera registry admin router."""
    return Router(
        path="/v1/admin",
        tags=["identity"],
        route_handlers=[
            get("/cameras")(get_all_cameras),
            get("/nodes/{node:str}/cameras")(get_node_cameras),
            post("/nodes/{node:str}/cameras")(post_camera),
            delete("/nodes/{node:str}/cameras/{camera_id:str}", status_code=200)(delete_camera),
        ],
    )
