"""create_app(config): the mount table and the lifespan. The only module that knows every service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from appliance import __version__
from appliance.cloud import Cloud, cloud
from appliance.compute import attachment_routes as compute_attachment_routes
from appliance.compute import host_routes as compute_host_routes
from appliance.compute import routes as compute_routes
from appliance.compute import server_routes as compute_server_routes
from appliance.compute import wire as compute_wire
from appliance.compute.migrations import migrations as compute_migrations
from appliance.config import Config
from appliance.console import routes as console_routes
from appliance.db import Checkpointer, migrate, open_db
from appliance.identity import auth_routes as identity_auth_routes
from appliance.identity import limit_routes as identity_limit_routes
from appliance.identity import routes as identity_routes
from appliance.identity.bootstrap import bootstrap, needs_bootstrap, write_client_files
from appliance.identity.catalog import Catalog, CatalogService
from appliance.identity.migrations import migrations as identity_migrations
from appliance.images import routes as image_routes
from appliance.images.migrations import migrations as image_migrations
from appliance.network import routes as network_routes
from appliance.network.migrations import migrations as network_migrations
from appliance.objects import swift_routes
from appliance.objects.migrations import migrations as object_migrations
from appliance.objects.s3_routes import s3_app
from appliance.volumes import routes as volume_routes
from appliance.volumes import wire as volume_wire
from appliance.volumes.migrations import migrations as volume_migrations
from appliance.web.dialects import CINDER, GLANCE, KEYSTONE, NEUTRON, NOVA
from appliance.web.microversions import MicroversionMiddleware, Microversions, Version
from appliance.web.middleware import RequestMiddleware

log = logging.getLogger("nube")

MIGRATIONS = (
    identity_migrations,
    image_migrations,
    object_migrations,
    compute_migrations,
    volume_migrations,
    network_migrations,
)

# What this process serves; each service adds its line when it lands (and its Mount below).
CATALOG_SERVICES = (
    CatalogService("identity", "keystone", "/identity", description="Identity"),
    CatalogService("image", "glance", "/image", description="Image"),
    CatalogService(
        "object-store", "swift", "/object-store/v1/AUTH_{project_id}", description="Object Storage"
    ),
    CatalogService("s3", "s3", "", port="s3", description="S3"),
    CatalogService("compute", "nova", "/compute/v2.1", description="Compute"),
    CatalogService("block-storage", "cinderv3", "/volume/v3", description="Block Storage"),
    CatalogService("volumev3", "cinderv3", "/volume/v3", description="Block Storage (alias)"),
    CatalogService("network", "neutron", "/networking", description="Networking"),
)


async def console_websocket(websocket: WebSocket) -> None:
    """noVNC's websocket: the token from POST /servers/{id}/remote-consoles picks the server."""
    the_cloud = cloud(websocket)
    server_id = the_cloud.consoles.server_of(websocket.query_params.get("token", ""))
    if server_id is None:
        await websocket.close(code=1008, reason="invalid or expired console token")
        return
    await the_cloud.consoles.proxy(websocket, server_id)


async def index(request: Request) -> Response:
    if console_routes.wants_console(request.scope):
        return RedirectResponse("/console/", status_code=303)
    base = cloud(request).api_base(request)
    apis = {s.type: base + s.path for s in cloud(request).catalog.services}
    return JSONResponse({"name": "Nube", "version": __version__, "apis": apis})


def create_app(
    config: Config, admin_password: str | None = None, in_memory: bool = False
) -> Starlette:
    """The ASGI app for the main port. `in_memory` gives unit tests a private database and keys."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        if not in_memory:
            config.data_dir.mkdir(parents=True, exist_ok=True)
        db = open_db(None if in_memory else config.db_path)
        migrate(db, MIGRATIONS)
        checkpointer = None if in_memory else Checkpointer(db, config.db_path)
        if checkpointer is not None:
            checkpointer.start()
        the_cloud = Cloud.build(config, db, Catalog(CATALOG_SERVICES, config.region), in_memory)
        first = needs_bootstrap(the_cloud.identity)
        if first:
            from appliance.identity.bootstrap import admin_password_from_env

            password = admin_password or admin_password_from_env()
            bootstrap(the_cloud.identity, password)
            if not in_memory:
                write_client_files(config, password)
                log.info("admin credentials written to %s", config.data_dir / "admin-openrc.sh")
        the_cloud.start()
        if first:
            the_cloud.first_start()
        await the_cloud.jobs.reconcile()
        try:
            yield {"cloud": the_cloud}
        finally:
            await the_cloud.network.metadata.close()
            await the_cloud.jobs.close()
            if checkpointer is not None:
                checkpointer.stop()
            db.close()
            log.info("stopped")

    identity_app = Starlette(
        routes=identity_routes.routes + identity_auth_routes.routes + identity_limit_routes.routes,
        exception_handlers=KEYSTONE.exception_handlers(),
    )
    image_app = Starlette(
        routes=image_routes.routes, exception_handlers=GLANCE.exception_handlers()
    )
    compute_versions = Microversions(
        "compute",
        Version.parse(compute_wire.MIN_VERSION),
        Version.parse(compute_wire.MAX_VERSION),
        "X-OpenStack-Nova-API-Version",
    )
    compute_app = Starlette(
        routes=compute_routes.routes
        + compute_server_routes.routes
        + compute_attachment_routes.routes
        + compute_host_routes.routes,
        exception_handlers=NOVA.exception_handlers(),
        middleware=[Middleware(MicroversionMiddleware, versions=compute_versions, dialect=NOVA)],
    )

    volume_versions = Microversions(
        "volume",
        Version.parse(volume_wire.MIN_VERSION),
        Version.parse(volume_wire.MAX_VERSION),
        "X-OpenStack-Volume-API-Version",
    )
    volume_app = Starlette(
        routes=volume_routes.routes,
        exception_handlers=CINDER.exception_handlers(),
        middleware=[Middleware(MicroversionMiddleware, versions=volume_versions, dialect=CINDER)],
    )

    network_app = Starlette(
        routes=network_routes.routes, exception_handlers=NEUTRON.exception_handlers()
    )

    def resolver(scope: Scope) -> Any:
        state = scope.get("state") or {}
        the_cloud = state.get("cloud")
        return the_cloud.auth.context if the_cloud else None

    return Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            # Without this, Mount would redirect /identity to /identity/; clients GET it bare.
            Route("/identity", identity_routes.versions, methods=["GET"]),
            Mount("/identity", app=identity_app),
            Route("/image", image_routes.versions, methods=["GET"]),
            Mount("/image", app=image_app),
            Mount("/object-store", app=swift_routes.app()),
            WebSocketRoute("/novnc/websockify", console_websocket),
            Mount("/novnc", app=console_routes.novnc()),
            Mount("/console", app=console_routes.app()),
            Route("/compute", compute_routes.versions, methods=["GET"]),
            Route("/compute/", compute_routes.versions, methods=["GET"]),
            Route("/compute/v2.1", compute_routes.version, methods=["GET"]),
            Mount("/compute/v2.1", app=compute_app),
            Route("/volume", volume_routes.versions, methods=["GET"]),
            Route("/volume/", volume_routes.versions, methods=["GET"]),
            Route("/volume/v3", volume_routes.version, methods=["GET"]),
            Mount("/volume/v3", app=volume_app),
            Route("/networking", network_routes.versions, methods=["GET"]),
            Route("/networking/", network_routes.versions, methods=["GET"]),
            Mount("/networking", app=network_app),
        ],
        middleware=[Middleware(RequestMiddleware, resolver=resolver)],
        lifespan=lifespan,
    )


class PortDispatch:
    """One uvicorn server, two listeners: requests to the S3 port go to the S3 app, the rest to main.

    Lifespan events go to the main app only (it owns the cloud)."""

    def __init__(self, main: Any, s3: Any, s3_port: int) -> None:
        self.main, self.s3, self.s3_port = main, s3, s3_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] != "lifespan" and server and server[1] == self.s3_port:
            await self.s3(scope, receive, send)
        else:
            await self.main(scope, receive, send)


__all__ = ["PortDispatch", "create_app", "s3_app"]
