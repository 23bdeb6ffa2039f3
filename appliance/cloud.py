"""The running cloud: config, database, jobs and every service, built once at start-up.

Routes reach it through the lifespan state (`request.state.cloud`); services get each other through
constructor arguments, never through this object.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database
from starlette.requests import HTTPConnection

from appliance.blobs import Blobs
from appliance.config import Config
from appliance.identity.assignments import Assignments
from appliance.identity.auth import Auth
from appliance.identity.catalog import Catalog
from appliance.identity.credentials import Credentials
from appliance.identity.limits import Limits
from appliance.identity.passwords import Passwords
from appliance.identity.service import Identity
from appliance.identity.tokens import KeyRing
from appliance.images.data import ImageData
from appliance.images.members import ImageMembers
from appliance.images.service import DEFAULT_LIMITS as IMAGE_LIMITS
from appliance.images.service import Images
from appliance.objects.multipart import Multipart
from appliance.objects.service import DEFAULT_LIMITS as OBJECT_LIMITS
from appliance.objects.service import ObjectStore
from appliance.tasks import Jobs


@dataclass(slots=True)
class Cloud:
    config: Config
    db: Database
    jobs: Jobs
    catalog: Catalog
    identity: Identity
    assignments: Assignments
    credentials: Credentials
    auth: Auth
    limits: Limits
    blobs: Blobs
    images: Images
    image_data: ImageData
    image_members: ImageMembers
    objects: ObjectStore
    multipart: Multipart

    @classmethod
    def build(
        cls, config: Config, db: Database, catalog: Catalog, in_memory: bool = False
    ) -> Cloud:
        """Wire every service; `in_memory` keeps keys in memory and blobs in a throwaway directory."""
        passwords = Passwords(
            config.password_time_cost, config.password_memory_kib, config.password_parallelism
        )
        identity = Identity(db, passwords)
        credentials = Credentials(
            identity, KeyRing(None if in_memory else config.keys_dir / "credential")
        )
        token_keys = KeyRing(None if in_memory else config.keys_dir / "fernet")
        auth = Auth(identity, credentials, token_keys, config.token_expiration)
        limits = Limits(identity, catalog)
        blobs = Blobs(
            Path(tempfile.mkdtemp(prefix="nube-blobs-")) if in_memory else config.blobs_dir
        )
        jobs = Jobs()
        images = Images(
            db,
            limit=lambda project_id, resource: limits.limit(project_id, "image", resource),
            project_exists=identity.project_exists,
        )
        objects = ObjectStore(
            db, blobs, lambda project_id, name: limits.limit(project_id, "object-store", name)
        )
        jobs.add_reconciler("objects", objects.reconcile)
        return cls(
            config=config,
            db=db,
            jobs=jobs,
            catalog=catalog,
            identity=identity,
            assignments=Assignments(identity),
            credentials=credentials,
            auth=auth,
            limits=limits,
            blobs=blobs,
            images=images,
            image_data=ImageData(images, blobs, jobs),
            image_members=ImageMembers(images),
            objects=objects,
            multipart=Multipart(objects),
        )

    def start(self) -> None:
        """Start-up work that needs every service: default limits of the APIs served."""
        served = {s.type for s in self.catalog.services}
        if "image" in served:
            self.limits.ensure_defaults("image", IMAGE_LIMITS)
        if "object-store" in served:
            self.limits.ensure_defaults("object-store", OBJECT_LIMITS)

    def api_base(self, conn: HTTPConnection) -> str:
        """The URL clients should use for the main port: configured, else what this client used."""
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        host = conn.headers.get("host") or f"{self.config.bind}:{self.config.port}"
        return f"{conn.url.scheme}://{host}"

    def s3_base(self, conn: HTTPConnection) -> str:
        hostname = self.api_base(conn).split("://", 1)[1].split("/", 1)[0]
        if hostname.startswith("["):
            hostname = hostname.split("]", 1)[0] + "]"
        else:
            hostname = hostname.rsplit(":", 1)[0]
        return f"{conn.url.scheme}://{hostname}:{self.config.s3_port}"


def cloud(conn: HTTPConnection) -> Cloud:
    return conn.state.cloud
