"""The service catalog: exactly the APIs this process serves, at the base URL the client used.

app.py registers one CatalogService per mounted API. Ids are stable (uuid5 of type and interface) so
`openstack endpoint list` and the token catalog agree across restarts.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

INTERFACES = ("public", "internal", "admin")
_NAMESPACE = uuid.UUID("6f1c1e9e-4a53-4ad6-9a4b-2c8c3f0b7a11")


@functools.cache
def _stable_id(name: str) -> str:
    # Every token body lists every endpoint: compute each uuid5 once, not per request.
    return uuid.uuid5(_NAMESPACE, name).hex


@dataclass(frozen=True, slots=True)
class CatalogService:
    type: str  # e.g. "identity", "compute"
    name: str  # e.g. "keystone", "nova"
    path: str  # appended to the base URL; may hold {project_id}
    port: str = "api"  # "api" (the main port) or "s3"
    description: str = ""

    @property
    def id(self) -> str:
        return _stable_id(f"service:{self.type}")

    def endpoint_id(self, interface: str) -> str:
        return _stable_id(f"endpoint:{self.type}:{interface}")


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    service: CatalogService
    interface: str
    region: str
    url: str


@dataclass(frozen=True, slots=True)
class Catalog:
    services: tuple[CatalogService, ...]
    region: str

    def endpoints(
        self, api_base: str, s3_base: str, project_id: str | None = None
    ) -> list[Endpoint]:
        result = []
        for service in self.services:
            base = s3_base if service.port == "s3" else api_base
            url = base.rstrip("/") + service.path.format(project_id=project_id or "$(project_id)s")
            for interface in INTERFACES:
                result.append(
                    Endpoint(service.endpoint_id(interface), service, interface, self.region, url)
                )
        return result

    def service(self, service_id: str) -> CatalogService | None:
        return next((s for s in self.services if s.id == service_id), None)
