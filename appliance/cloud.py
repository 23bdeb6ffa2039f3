"""The running cloud: config, database, jobs and every service, built once at start-up.

Routes reach it through the lifespan state (`request.state.cloud`); services get each other through
constructor arguments, never through this object.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database
from starlette.requests import HTTPConnection

from appliance.blobs import Blobs
from appliance.compute.consoles import Consoles
from appliance.compute.flavors import Flavors
from appliance.compute.hosts import Hosts
from appliance.compute.hypervisor import Hypervisor
from appliance.compute.interfaces import Interfaces
from appliance.compute.keypairs import Keypairs
from appliance.compute.lifecycle import Lifecycle
from appliance.compute.models import Server
from appliance.compute.quotas import DEFAULT_LIMITS as COMPUTE_LIMITS
from appliance.compute.quotas import Quotas
from appliance.compute.servers import Servers
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
from appliance.network.datapath import Datapath, Names
from appliance.network.floating_ips import FloatingIps
from appliance.network.quotas import NetworkQuotas
from appliance.network.routers import Routers
from appliance.network.security_groups import SecurityGroups
from appliance.network.service import DEFAULT_LIMITS as NETWORK_LIMITS
from appliance.network.service import Network
from appliance.objects.multipart import Multipart
from appliance.objects.service import DEFAULT_LIMITS as OBJECT_LIMITS
from appliance.objects.service import ObjectStore
from appliance.tasks import Jobs
from appliance.volumes.attachments import Attachments
from appliance.volumes.operations import Operations as VolumeOperations
from appliance.volumes.service import DEFAULT_LIMITS as VOLUME_LIMITS
from appliance.volumes.service import Volumes


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
    flavors: Flavors
    keypairs: Keypairs
    quotas: Quotas
    servers: Servers
    lifecycle: Lifecycle
    hosts: Hosts
    consoles: Consoles
    volumes: Volumes
    volume_operations: VolumeOperations
    attachments: Attachments
    interfaces: Interfaces
    network: Network
    security_groups: SecurityGroups
    routers: Routers
    floating_ips: FloatingIps
    network_quotas: NetworkQuotas

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
        image_data = ImageData(images, blobs, jobs)
        flavors = Flavors(db)
        quotas = Quotas(db, limits)
        keypairs = Keypairs(db, quotas.limit)
        servers = Servers(db, flavors, keypairs, quotas, images)
        cloud_id = uuid.uuid4().hex if in_memory else _cloud_id(config.data_dir)
        datapath = Datapath(
            Names(cloud_id),
            Path(tempfile.mkdtemp(prefix="nube-dhcp-")) if in_memory else config.data_dir / "dhcp",
            live=not in_memory and os.geteuid() == 0,
        )
        network = Network(
            db, lambda project_id, name: limits.limit(project_id, "network", name), jobs, datapath
        )
        servers.bind_ports = network.bind_ports
        hypervisor = Hypervisor("test:///default" if in_memory else config.libvirt_uri)
        lifecycle = Lifecycle(
            servers, images, image_data, blobs, jobs, hypervisor, config.data_dir / "instances",
            cloud_id=cloud_id,
        )  # fmt: skip
        objects = ObjectStore(
            db, blobs, lambda project_id, name: limits.limit(project_id, "object-store", name)
        )
        jobs.add_reconciler("objects", objects.reconcile)
        volumes = Volumes(db, limits, images)
        volume_operations = VolumeOperations(
            volumes,
            servers,
            images,
            image_data,
            blobs,
            jobs,
            hypervisor,
            config.data_dir / "volumes",
        )
        lifecycle.on_deleted.append(volume_operations.server_deleted)
        attachments = Attachments(servers, volumes, volume_operations)
        interfaces = Interfaces(servers, hypervisor, network)
        lifecycle.boot_disk = attachments.boot_disk
        lifecycle.network = network
        network.describe_server = lifecycle.describe
        lifecycle.on_deleted.append(network.release_ports)
        lifecycle.volume_disks = attachments.data_disks
        host_disk = Path(tempfile.gettempdir()) if in_memory else config.data_dir
        hosts = Hosts(db, hypervisor, host_disk, cloud_id, config.bind)
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
            image_data=image_data,
            image_members=ImageMembers(images),
            objects=objects,
            multipart=Multipart(objects),
            flavors=flavors,
            keypairs=keypairs,
            quotas=quotas,
            servers=servers,
            lifecycle=lifecycle,
            hosts=hosts,
            consoles=Consoles(db, hypervisor),
            volumes=volumes,
            volume_operations=volume_operations,
            attachments=attachments,
            interfaces=interfaces,
            network=network,
            security_groups=SecurityGroups(network),
            routers=Routers(network),
            floating_ips=FloatingIps(network),
            network_quotas=NetworkQuotas(network, limits),
        )

    def start(self) -> None:
        """Start-up work that needs every service: default limits of the APIs served."""
        served = {s.type for s in self.catalog.services}
        if "image" in served:
            self.limits.ensure_defaults("image", IMAGE_LIMITS)
        if "object-store" in served:
            self.limits.ensure_defaults("object-store", OBJECT_LIMITS)
        if "compute" in served:
            self.limits.ensure_defaults("compute", COMPUTE_LIMITS)
        if "block-storage" in served:
            self.limits.ensure_defaults("block-storage", VOLUME_LIMITS)
        if "network" in served:
            self.limits.ensure_defaults("network", NETWORK_LIMITS)

    def first_start(self) -> None:
        """Once, right after identity's bootstrap on an empty data dir: the default networks."""
        served = {s.type for s in self.catalog.services}
        if "network" not in served or not self.config.public_cidr:
            return
        from appliance.context import Context
        from appliance.identity.bootstrap import DEFAULT_DOMAIN_ID
        from appliance.network.defaults import create_default_networks

        project = self.identity.project_by_name("admin", DEFAULT_DOMAIN_ID)
        user = self.identity.user_by_name("admin", DEFAULT_DOMAIN_ID)
        admin = Context(user.id, user.name, DEFAULT_DOMAIN_ID, frozenset({"admin", "member", "reader"}),
                        project.id, project.name, DEFAULT_DOMAIN_ID)  # fmt: skip
        create_default_networks(
            self.network, self.routers, admin, self.config.public_cidr, self.config.private_cidr
        )

    def console_output(self, server: Server, length: int | None) -> str:
        """The tail of a server's serial console log (os-getConsoleOutput)."""
        path = self.config.data_dir / "instances" / server.id / "console.log"
        try:
            text = path.read_bytes()[-(1 << 20) :].decode(errors="replace")
        except FileNotFoundError:
            return ""
        if length is None or int(length) < 0:
            return text
        lines = text.splitlines(keepends=True)
        return "".join(lines[-int(length) :]) if int(length) else ""

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


def _cloud_id(data_dir: Path) -> str:
    """This installation's identity (made on first start), stamped on every VM it creates."""
    path = data_dir / "cloud-id"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(uuid.uuid4().hex + "\n")
        tmp.replace(path)
    return path.read_text().strip()


def cloud(conn: HTTPConnection) -> Cloud:
    return conn.state.cloud
