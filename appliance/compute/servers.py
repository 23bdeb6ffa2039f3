"""Servers: state and policy. Every change that touches a VM sets a task state here and hands the work
to lifecycle.py as a job; the API returns at once (202) with the transitional status."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

from appliance.compute.flavors import Flavors
from appliance.compute.keypairs import Keypairs
from appliance.compute.models import Flavor, Server, Task, VmState, api_status
from appliance.compute.quotas import Quotas
from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound, OverQuota
from appliance.images.models import Status as ImageStatus
from appliance.images.service import Images


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hostname(name: str) -> str:
    host = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63]
    return host or "server"


# Which actions each (vm_state) allows: nova/compute/api.py check_instance_state decorators.
ALLOWED = {
    "stop": {VmState.ACTIVE, VmState.RESIZED, VmState.ERROR},
    "start": {VmState.STOPPED},
    "reboot": {VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED, VmState.ERROR},
    "pause": {VmState.ACTIVE},
    "unpause": {VmState.PAUSED},
    "suspend": {VmState.ACTIVE},
    "resume": {VmState.SUSPENDED},
    "resize": {VmState.ACTIVE, VmState.STOPPED},
    "confirmResize": {VmState.RESIZED},
    "revertResize": {VmState.RESIZED},
    "rebuild": {VmState.ACTIVE, VmState.STOPPED, VmState.ERROR},
    "createImage": {VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED},
}


class Servers:
    def __init__(
        self, db: Database, flavors: Flavors, keypairs: Keypairs, quotas: Quotas, images: Images
    ) -> None:
        self.db = db
        self.flavors = flavors
        self.keypairs = keypairs
        self.quotas = quotas
        self.images = images
        # lifecycle.py plugs itself in: (action, server_id, ctx, args) -> None
        self.submit: Callable[[str, str, Context, dict[str, Any]], None] = lambda *a: None
        # Block storage plugs in: make or reserve the root volume of (ctx, server_id, bdm).
        self.prepare_boot_volume: Callable[[Context, str, dict[str, Any]], None] = _no_volumes
        # The network service plugs in: create or take the ports of (ctx, server_id, hostname, requests).
        self.bind_ports: Callable[[Context, str, str, list[dict[str, Any]]], list[str]] | None = (
            None
        )

    # -- rows ----------------------------------------------------------------------------------

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def row(self, server_id: str) -> Server | None:
        rows = self._rows("SELECT * FROM servers WHERE id = ?", [server_id])
        return Server.from_row(rows[0]) if rows else None

    def set(self, server_id: str, **changes: Any) -> None:
        changes["updated_at"] = stamp()
        for key in ("fault", "flavor", "old_flavor", "metadata", "tags"):
            if key in changes and changes[key] is not None and not isinstance(changes[key], str):
                value = changes[key]
                changes[key] = value.to_json() if isinstance(value, Flavor) else json.dumps(value)
        columns = ", ".join(f"{k} = ?" for k in changes)
        with self.db.atomic():
            self.db.execute(
                f"UPDATE servers SET {columns} WHERE id = ?", [*changes.values(), server_id]
            )

    # -- policy --------------------------------------------------------------------------------

    def get(self, ctx: Context, server_id: str) -> Server:
        server = self.row(server_id)
        if (
            server is None
            or server.vm_state == VmState.DELETED
            or not (ctx.is_admin or server.project_id == ctx.project_id)
        ):
            raise NotFound(f"Instance {server_id} could not be found.")
        return server

    def _writable(self, ctx: Context, server_id: str) -> Server:
        server = self.get(ctx, server_id)
        if not ctx.can_write:
            raise Forbidden("Policy doesn't allow this operation: the member role is required.")
        if server.locked and not ctx.is_admin:
            raise Conflict(f"Instance {server_id} is locked")
        return server

    # -- create --------------------------------------------------------------------------------

    def create(self, ctx: Context, spec: dict[str, Any], version: tuple[int, int]) -> list[Server]:
        if ctx.project_id is None or not ctx.can_write:
            raise Forbidden("Creating servers requires the member role in a project.")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise Invalid("Invalid input for field/attribute name.")
        flavor_ref = spec.get("flavorRef")
        if not isinstance(flavor_ref, str | int):
            raise Invalid("flavorRef is required.")
        flavor = self.flavors.get(ctx, str(flavor_ref).rstrip("/").rsplit("/", 1)[-1])
        boot = _boot_volume(spec)
        image_id = None if boot else self._image_ref(spec)
        if boot is None:
            image = self.images.row(image_id) if image_id else None
            if image is None or not self.images.visible(ctx, image):
                raise Invalid(f"Image {image_id} could not be found.")
            if image.status != ImageStatus.ACTIVE:
                raise Conflict(f"Image {image_id} is not active.")
            if image.min_ram and flavor.ram < image.min_ram:
                raise Invalid("Flavor's memory is too small for requested image.")
            if image.min_disk and flavor.disk and flavor.disk < image.min_disk:
                raise Invalid("Flavor's disk is too small for requested image.")
        nic_requests = self._networks(spec, version)
        groups = spec.get("security_groups")
        if groups not in (None, [], [{"name": "default"}]):
            if self.bind_ports is None:
                raise Invalid("Security groups other than 'default' need the network service.")
            if not isinstance(groups, list) or not all(
                isinstance(g, dict) and g.get("name") for g in groups
            ):
                raise Invalid("security_groups must be a list of {name}.")
            for request in nic_requests:  # each new port gets them (OSC sends group ids as names)
                request["security_groups"] = [str(g["name"]) for g in groups]
        config_drive = _config_drive(spec.get("config_drive"), nic_requests)
        key_name = spec.get("key_name")
        key_data = self.keypairs.get(ctx, key_name).public_key if key_name else None
        user_data = spec.get("user_data")
        if user_data is not None:
            try:
                base64.b64decode(user_data, validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise Invalid("User data needs to be valid base 64.") from None
            if len(user_data) > 65535:
                raise Invalid("User data too large: at most 65535 bytes of base64.")
        metadata = spec.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise Invalid("metadata must be an object of strings.")
        self._check_metadata_quota(ctx.project_id, len(metadata))
        min_count, max_count = (
            int(spec.get("min_count", 1)),
            int(spec.get("max_count", spec.get("min_count", 1))),
        )
        if min_count < 1 or max_count < min_count:
            raise Invalid("min_count must be >= 1 and max_count >= min_count.")
        count = max_count
        while count >= min_count and self.quotas.check_servers(
            ctx.project_id, count, flavor.vcpus, flavor.ram
        ):
            count -= 1
        if count < min_count:
            raise OverQuota(
                self.quotas.check_servers(ctx.project_id, min_count, flavor.vcpus, flavor.ram)
                or "Quota exceeded"
            )
        if boot is not None and count != 1:
            raise Invalid("A server that boots from a volume is created one at a time.")
        reservation = f"r-{uuid.uuid4().hex[:8]}"
        made = []
        now = stamp()
        with self.db.atomic():
            for index in range(count):
                server_id = str(uuid.uuid4())
                display = name if count == 1 else f"{name}-{index + 1}"
                self.db.execute(
                    "INSERT INTO servers (id, name, project_id, user_id, image_id, flavor, vm_state, task_state, "
                    "power_state, key_name, key_data, user_data, config_drive, metadata, tags, description, "
                    "access_ipv4, access_ipv6, launch_index, reservation_id, hostname, created_at, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?,0,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [server_id, display, ctx.project_id, ctx.user_id, image_id, flavor.to_json(), str(VmState.BUILDING),
                     str(Task.SCHEDULING), key_name, key_data, user_data, int(config_drive), json.dumps(metadata),
                     json.dumps(spec.get("tags") or []), spec.get("description"), spec.get("accessIPv4") or "",
                     spec.get("accessIPv6") or "", index, reservation, _hostname(display), now, now],
                )  # fmt: skip
                made.append(server_id)
        if boot is not None:
            try:
                self.prepare_boot_volume(ctx, made[0], boot)
            except Exception:
                self.set(
                    made[0], vm_state=str(VmState.DELETED), task_state=None, deleted_at=stamp()
                )
                raise
        for server_id in made:
            if nic_requests and self.bind_ports is not None:
                try:
                    self.bind_ports(ctx, server_id, _hostname(name), nic_requests)
                except Exception as exc:
                    self.set(
                        server_id,
                        vm_state=str(VmState.DELETED),
                        task_state=None,
                        deleted_at=stamp(),
                    )
                    if isinstance(exc, NotFound):  # nova answers 400 for an unknown network or port
                        raise Invalid(exc.message) from None
                    raise
            self.submit("create", server_id, ctx, {})
        return [s for s in (self.row(i) for i in made) if s is not None]

    def _image_ref(self, spec: dict[str, Any]) -> str | None:
        ref = spec.get("imageRef")
        for bdm in spec.get("block_device_mapping_v2") or []:
            if bdm.get("source_type") == "image" and bdm.get("boot_index") in (0, "0"):
                ref = ref or bdm.get("uuid")
        if not ref:
            raise Invalid("Missing imageRef attribute")
        return str(ref).rstrip("/").rsplit("/", 1)[-1]

    def _networks(self, spec: dict[str, Any], version: tuple[int, int]) -> list[dict[str, Any]]:
        """The NIC requests: [{"uuid": net} | {"port": id} | {"auto": True}], in order."""
        networks = spec.get("networks")
        if networks is None:
            if version >= (2, 37):
                raise Invalid(
                    "Invalid input for field/attribute networks: 'networks' is a required property."
                )
            networks = "auto"
        if networks == "none" or (isinstance(networks, list) and not networks):
            return []
        if networks == "auto":
            return [{"auto": True}] if self.bind_ports is not None else []
        if not isinstance(networks, list) or not all(isinstance(n, dict) for n in networks):
            raise Invalid("Invalid input for field/attribute networks.")
        if self.bind_ports is None:
            raise Invalid("Networks need the network service, which is not available.")
        requests = []
        for n in networks:
            if not (n.get("uuid") or n.get("port")):
                raise Invalid("Each network needs a uuid or a port.")
            requests.append({k: n[k] for k in ("uuid", "port", "fixed_ip") if n.get(k)})
        return requests

    def _check_metadata_quota(self, project_id: str, items: int) -> None:
        limit = self.quotas.limit(project_id, "server_metadata_items")
        if 0 <= limit < items:
            raise OverQuota(f"Quota exceeded for metadata_items: {items} requested, limit {limit}")

    # -- list, update, delete ------------------------------------------------------------------

    def list_servers(self, ctx: Context, filters: dict[str, Any]) -> list[Server]:
        where, params = ["vm_state != 'deleted'"], []
        if filters.get("all_tenants") and ctx.is_admin:
            project = filters.get("project_id") or filters.get("tenant_id")
            if project:
                where.append("project_id = ?")
                params.append(project)
        else:
            where.append("project_id = ?")
            params.append(ctx.project_id or "")
        if filters.get("changes-since"):
            where = [w for w in where if w != "vm_state != 'deleted'"]
            where.append("updated_at >= ?")
            params.append(filters["changes-since"])
        for key, column in (("image", "image_id"), ("user_id", "user_id")):
            if filters.get(key):
                where.append(f"{column} = ?")
                params.append(filters[key])
        rows = self._rows(
            "SELECT * FROM servers WHERE "
            + " AND ".join(where)
            + " ORDER BY created_at DESC, id DESC",
            params,
        )
        servers = [Server.from_row(r) for r in rows]
        if filters.get("name"):
            try:
                pattern = re.compile(filters["name"])
            except re.error:
                raise Invalid(f"Invalid regular expression for name: {filters['name']}") from None
            servers = [s for s in servers if pattern.search(s.name)]
        if filters.get("status"):
            wanted = {x.upper() for x in filters["status"]}
            servers = [s for s in servers if s.status in wanted]
        if filters.get("flavor"):
            servers = [s for s in servers if s.flavor.id == filters["flavor"]]
        return servers

    _OWN = "vm_state != 'deleted' AND project_id = ?"

    def count(self, ctx: Context) -> int:
        (total,) = self.db.execute(
            f"SELECT count(*) FROM servers WHERE {self._OWN}", [ctx.project_id or ""]
        ).fetchone()
        return int(total)

    def names(self, ctx: Context) -> list[tuple[str, str, str]]:
        """(id, name, status) of the caller's project's servers, cheaply, for pickers."""
        rows = self.db.execute(
            f"SELECT id, name, vm_state, task_state FROM servers WHERE {self._OWN} ORDER BY name, id",
            [ctx.project_id or ""],
        ).fetchall()
        return [(r[0], r[1], api_status(r[2], r[3])) for r in rows]

    def page(self, ctx: Context, offset: int, limit: int) -> list[Server]:
        """One page of the caller's project's servers, newest first (as list_servers orders them):
        the web console pages through thousands without reading them all."""
        rows = self._rows(
            f"SELECT * FROM servers WHERE {self._OWN} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            [ctx.project_id or "", limit, offset],
        )
        return [Server.from_row(r) for r in rows]

    def update(self, ctx: Context, server_id: str, spec: dict[str, Any]) -> Server:
        self._writable(ctx, server_id)
        changes: dict[str, Any] = {}
        if "name" in spec:
            if (
                not isinstance(spec["name"], str)
                or not spec["name"].strip()
                or len(spec["name"]) > 255
            ):
                raise Invalid("Invalid input for field/attribute name.")
            changes["name"] = spec["name"]
        if "description" in spec:
            changes["description"] = spec["description"]
        for key, column in (("accessIPv4", "access_ipv4"), ("accessIPv6", "access_ipv6")):
            if key in spec:
                changes[column] = spec[key] or ""
        if changes:
            self.set(server_id, **changes)
        return self.get(ctx, server_id)

    def delete(self, ctx: Context, server_id: str) -> None:
        server = self._writable(ctx, server_id)
        if server.task_state == Task.DELETING:
            return
        self.set(server_id, task_state=str(Task.DELETING))
        self.submit("delete", server_id, ctx, {})

    # -- actions -------------------------------------------------------------------------------

    def act(
        self, ctx: Context, server_id: str, action: str, args: dict[str, Any], task: Task | None
    ) -> Server:
        """Check that the action fits the server's state, set its task state, start the job."""
        server = self._writable(ctx, server_id)
        if server.image_id is None and action in ("resize", "rebuild", "createImage"):
            raise Conflict(f"Cannot '{action}' instance {server_id}: it boots from a volume.")
        allowed = ALLOWED.get(action)
        if allowed is not None and server.vm_state not in allowed:
            raise Conflict(
                f"Cannot '{action}' instance {server_id} while it is in vm_state {server.vm_state}"
            )
        if server.task_state is not None:
            raise Conflict(
                f"Cannot '{action}' instance {server_id} while it is in task_state {server.task_state}"
            )
        if task is not None:
            self.set(server_id, task_state=str(task))
        self.submit(action, server_id, ctx, args)
        return self.get(ctx, server_id)

    def lock(self, ctx: Context, server_id: str, locked: bool, reason: str | None = None) -> None:
        server = self.get(ctx, server_id)
        if not ctx.can_write:
            raise Forbidden("Policy doesn't allow this operation: the member role is required.")
        if not locked and server.locked and server.locked_by == "admin" and not ctx.is_admin:
            raise Forbidden("This server was locked by an admin.")
        self.set(server_id, locked=int(locked), locked_reason=reason if locked else None,
                 locked_by=("admin" if ctx.is_admin else "owner") if locked else None)  # fmt: skip
        self.record(ctx, server_id, "lock" if locked else "unlock", result="Success")

    # -- metadata ------------------------------------------------------------------------------

    def set_metadata(
        self, ctx: Context, server_id: str, items: Any, replace: bool
    ) -> dict[str, str]:
        server = self._writable(ctx, server_id)
        if not isinstance(items, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 255 and len(v) <= 255
            for k, v in items.items()
        ):
            raise Invalid("Metadata keys and values must be strings of at most 255 characters.")
        merged = dict(items) if replace else {**server.metadata, **items}
        self._check_metadata_quota(server.project_id, len(merged))
        self.set(server_id, metadata=merged)
        return merged

    def delete_metadata(self, ctx: Context, server_id: str, key: str) -> None:
        server = self._writable(ctx, server_id)
        if key not in server.metadata:
            raise NotFound(f"Metadata item was not found: {key}")
        self.set(server_id, metadata={k: v for k, v in server.metadata.items() if k != key})

    # -- instance actions ----------------------------------------------------------------------

    def record(self, ctx: Context, server_id: str, action: str, result: str | None = None) -> int:
        now = stamp()
        with self.db.atomic():
            cursor = self.db.execute(
                "INSERT INTO instance_actions (server_id, request_id, action, user_id, project_id, start_time, "
                "finish_time, result, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                [server_id, ctx.request_id or f"req-{uuid.uuid4()}", action, ctx.user_id, ctx.project_id or "",
                 now, now if result else None, result, now],
            )  # fmt: skip
        return int(cursor.lastrowid or 0)

    def finish(self, action_id: int, result: str, traceback: str | None = None) -> None:
        now = stamp()
        message = None if result == "Success" else "Error"
        with self.db.atomic():
            self.db.execute(
                "UPDATE instance_actions SET finish_time = ?, result = ?, message = ?, traceback = ?, updated_at = ? WHERE id = ?",
                [now, result, message, traceback, now, action_id],
            )

    def recent_actions(self, ctx: Context, limit: int = 10) -> list[dict[str, Any]]:
        """The caller's project's latest instance actions, with their server's name."""
        return self._rows(
            "SELECT a.action, a.start_time, a.result, a.server_id, s.name AS server_name "
            "FROM instance_actions a JOIN servers s ON s.id = a.server_id "
            "WHERE a.project_id = ? ORDER BY a.id DESC LIMIT ?",
            [ctx.project_id or "", limit],
        )

    def actions(self, ctx: Context, server_id: str) -> list[dict[str, Any]]:
        server = self.row(server_id)
        if server is None or not (ctx.is_admin or server.project_id == ctx.project_id):
            raise NotFound(f"Instance {server_id} could not be found.")
        return self._rows(
            "SELECT * FROM instance_actions WHERE server_id = ? ORDER BY id DESC", [server_id]
        )


def _config_drive(asked: Any, nic_requests: list[dict[str, Any]]) -> bool:
    """As asked (Nova's bool, or its string forms); unasked, a server whose networks are all named
    reads the metadata service through them, and any other server gets a config drive."""
    if asked is None or asked == "":
        return not nic_requests or any(r.get("auto") for r in nic_requests)
    if isinstance(asked, bool):
        return asked
    if isinstance(asked, str) and asked.lower() in ("true", "1", "yes", "false", "0", "no"):
        return asked.lower() in ("true", "1", "yes")
    raise Invalid(f"Invalid input for field/attribute config_drive. Value: {asked}.")


def _no_volumes(ctx: Context, server_id: str, bdm: dict[str, Any]) -> None:
    raise Invalid("Booting from a volume needs the block storage service.")


def _boot_volume(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The boot_index 0 block device mapping when the root disk is a volume, else None.

    (OSC --boot-from-volume: source image, destination volume, volume_size; --volume: source volume.)"""
    mappings = spec.get("block_device_mapping_v2") or []
    if not isinstance(mappings, list):
        raise Invalid("block_device_mapping_v2 must be a list.")
    for bdm in mappings:
        if not isinstance(bdm, dict):
            raise Invalid("Each block device mapping must be an object.")
        if bdm.get("destination_type") != "volume":
            continue
        if str(bdm.get("boot_index")) not in ("0", "None") or len(mappings) > 1:
            raise Invalid("Only one block device mapping, the root volume, is supported.")
        if bdm.get("source_type") not in ("image", "volume", "snapshot") or not bdm.get("uuid"):
            raise Invalid("A root volume needs source_type image, volume or snapshot and a uuid.")
        if bdm["source_type"] == "image" and not bdm.get("volume_size"):
            raise Invalid("Booting from a new volume needs volume_size.")
        return dict(bdm)
    return None


def fault(message: str, code: int = 500) -> dict[str, Any]:
    return {
        "code": code,
        "message": message[:255],
        "created": stamp(),
        "details": message if code >= 500 else "",
    }


def seconds_since(iso_stamp: str) -> float:
    return (
        time.time()
        - datetime.strptime(iso_stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    )
