"""Volumes and snapshots: validation, policy, quotas and state. Work on files and VMs is handed to
operations.py as jobs; the API returns at once with the transitional status (Cinder's state machine:
creating → available → attaching → in-use → detaching → available; error, error_deleting, extending)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound, OverQuota
from appliance.identity.limits import Limits
from appliance.images.models import Status as ImageStatus
from appliance.images.service import Images
from appliance.volumes.models import Snapshot, Status, Volume

DEFAULT_TYPE = "__DEFAULT__"
DEFAULT_TYPE_ID = "5f0a1b7e-3c1d-4f0e-9d55-6e0b6f1e0d01"
SERVICE_TYPE = "block-storage"
# os-quota-sets key -> unified limit resource name (cinder/quota.py unified limits use the same names)
RESOURCES = ("volumes", "gigabytes", "snapshots")
DEFAULT_LIMITS = {"volumes": 10, "gigabytes": 1000, "snapshots": 10}
MAX_SIZE_GB = 2048

Submit = Callable[[str, str, dict[str, Any]], None]


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _text(spec: dict[str, Any], key: str, limit: int = 255) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(f"Invalid input for field/attribute {key}.")
    return value


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 255 and len(v) <= 255
        for k, v in value.items()
    ):
        raise Invalid("Metadata keys and values must be strings of at most 255 characters.")
    return dict(value)


def _size(value: Any) -> int | None:
    if value is None:
        return None
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise Invalid(f"Invalid input received: size {value!r} must be an integer.") from None
    if isinstance(value, bool) or size < 1 or size > MAX_SIZE_GB:
        raise Invalid(f"Invalid input received: size must be between 1 and {MAX_SIZE_GB} GB.")
    return size


class Volumes:
    def __init__(self, db: Database, limits: Limits, images: Images) -> None:
        self.db = db
        self.limits = limits
        self.images = images
        # operations.py plugs itself in: (step, resource_id, args)
        self.submit: Submit = lambda *a: None

    # -- rows ----------------------------------------------------------------------------------

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def row(self, volume_id: str) -> Volume | None:
        rows = self._rows("SELECT * FROM volumes WHERE id = ?", [volume_id])
        return Volume.from_row(rows[0]) if rows else None

    def snapshot_row(self, snapshot_id: str) -> Snapshot | None:
        rows = self._rows("SELECT * FROM volume_snapshots WHERE id = ?", [snapshot_id])
        return Snapshot.from_row(rows[0]) if rows else None

    def rows_where(self, where: str, params: list[Any]) -> list[Volume]:
        return [
            Volume.from_row(r) for r in self._rows(f"SELECT * FROM volumes WHERE {where}", params)
        ]

    def snapshot_rows_where(self, where: str, params: list[Any]) -> list[Snapshot]:
        sql = f"SELECT * FROM volume_snapshots WHERE {where}"
        return [Snapshot.from_row(r) for r in self._rows(sql, params)]

    def _update(self, table: str, row_id: str, changes: dict[str, Any]) -> None:
        changes["updated_at"] = stamp()
        for key in ("metadata", "image_metadata"):
            if key in changes and changes[key] is not None and not isinstance(changes[key], str):
                changes[key] = json.dumps(changes[key])
        for key, value in list(changes.items()):
            if isinstance(value, Status):
                changes[key] = str(value)
        columns = ", ".join(f"{k} = ?" for k in changes)
        with self.db.atomic():
            self.db.execute(
                f"UPDATE {table} SET {columns} WHERE id = ?", [*changes.values(), row_id]
            )

    def set(self, volume_id: str, **changes: Any) -> None:
        self._update("volumes", volume_id, changes)

    def set_snapshot(self, snapshot_id: str, **changes: Any) -> None:
        self._update("volume_snapshots", snapshot_id, changes)

    def forget(self, volume_id: str) -> None:
        with self.db.atomic():
            self.db.execute("DELETE FROM volumes WHERE id = ?", [volume_id])

    def forget_snapshot(self, snapshot_id: str) -> None:
        with self.db.atomic():
            self.db.execute("DELETE FROM volume_snapshots WHERE id = ?", [snapshot_id])

    # -- policy --------------------------------------------------------------------------------

    def get(self, ctx: Context, volume_id: str) -> Volume:
        volume = self.row(volume_id)
        if volume is None or not (ctx.is_admin or volume.project_id == ctx.project_id):
            raise NotFound(f"Volume {volume_id} could not be found.")
        return volume

    def writable(self, ctx: Context, volume_id: str) -> Volume:
        volume = self.get(ctx, volume_id)
        if not ctx.can_write:
            raise Forbidden("Policy doesn't allow this operation: the member role is required.")
        return volume

    def get_snapshot(self, ctx: Context, snapshot_id: str) -> Snapshot:
        snap = self.snapshot_row(snapshot_id)
        if snap is None or not (ctx.is_admin or snap.project_id == ctx.project_id):
            raise NotFound(f"Snapshot {snapshot_id} could not be found.")
        return snap

    # -- quotas --------------------------------------------------------------------------------

    def limit(self, project_id: str, resource: str) -> int:
        return self.limits.limit(project_id, SERVICE_TYPE, resource)

    def usage(self, project_id: str) -> dict[str, int]:
        vols = self.db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM volumes WHERE project_id = ?",
            [project_id],
        ).fetchone()
        snaps = self.db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM volume_snapshots WHERE project_id = ?",
            [project_id],
        ).fetchone()
        return {"volumes": vols[0], "snapshots": snaps[0], "gigabytes": vols[1] + snaps[1]}

    def check_quota(self, project_id: str, **wanted: int) -> None:
        used = self.usage(project_id)
        for resource, amount in wanted.items():
            limit = self.limit(project_id, resource)
            if amount and 0 <= limit < used[resource] + amount:
                # cinder/exception.py VolumeSizeExceedsAvailableQuota / VolumeLimitExceeded
                raise OverQuota(
                    f"VolumeLimitExceeded: Maximum number of {resource} allowed ({limit}) exceeded "
                    f"for quota '{resource}' (requested {amount}, in use {used[resource]})."
                )

    # -- volumes -------------------------------------------------------------------------------

    def create(self, ctx: Context, spec: dict[str, Any]) -> Volume:
        if ctx.project_id is None or not ctx.can_write:
            raise Forbidden("Creating volumes requires the member role in a project.")
        size = _size(spec.get("size"))
        name = _text(spec, "name")
        description = _text(spec, "description", 65535)
        metadata = _metadata(spec.get("metadata"))
        vtype = spec.get("volume_type")
        if vtype not in (None, DEFAULT_TYPE, DEFAULT_TYPE_ID):
            raise NotFound(f"Volume type {vtype} could not be found.")
        for unsupported in ("backup_id", "consistencygroup_id", "group_id"):
            if spec.get(unsupported):
                raise Invalid(f"{unsupported} is not supported by this cloud.")
        sources = [k for k in ("snapshot_id", "source_volid", "imageRef") if spec.get(k)]
        if len(sources) > 1:
            raise Invalid("Only one of snapshot_id, source_volid and imageRef may be given.")
        args: dict[str, Any] = {}
        snapshot_id = source_volid = image_id = None
        image_metadata = None
        bootable = False
        if spec.get("snapshot_id"):
            snap = self.get_snapshot(ctx, str(spec["snapshot_id"]))
            if snap.status != Status.AVAILABLE:
                raise Invalid(f"Snapshot {snap.id} is not available (status {snap.status}).")
            size = size or snap.size
            if size < snap.size:
                raise Invalid(
                    f"Volume size {size} GB is smaller than the snapshot's {snap.size} GB."
                )
            snapshot_id = snap.id
            parent = self.row(snap.volume_id)
            bootable = bool(parent and parent.bootable)
            image_metadata = parent.image_metadata if parent else None
        elif spec.get("source_volid"):
            src = self.get(ctx, str(spec["source_volid"]))
            if src.status not in (Status.AVAILABLE, Status.IN_USE):
                raise Invalid(f"Source volume {src.id} is {src.status}.")
            size = size or src.size
            if size < src.size:
                raise Invalid(f"Volume size {size} GB is smaller than the source's {src.size} GB.")
            source_volid, bootable, image_metadata = src.id, src.bootable, src.image_metadata
        elif spec.get("imageRef"):
            image_id = str(spec["imageRef"]).rstrip("/").rsplit("/", 1)[-1]
            image = self.images.row(image_id)
            if image is None or not self.images.visible(ctx, image):
                raise NotFound(f"Image {image_id} could not be found.")
            if image.status != ImageStatus.ACTIVE or not image.blob:
                raise Invalid(f"Image {image_id} is not active.")
            min_gb = max(
                image.min_disk, -(-(image.virtual_size or image.size or 0) // (1 << 30)), 1
            )
            size = size or min_gb
            if size < min_gb:
                raise Invalid(f"Image {image_id} needs a volume of at least {min_gb} GB.")
            bootable = True
            image_metadata = image_meta(image)
        if size is None:
            raise Invalid("Invalid input received: size is required.")
        self.check_quota(ctx.project_id, volumes=1, gigabytes=size)
        volume_id = str(uuid.uuid4())
        now = stamp()
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO volumes (id, name, description, project_id, user_id, size, status, bootable, "
                "volume_type, snapshot_id, source_volid, image_id, metadata, image_metadata, created_at, "
                "updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [volume_id, name, description, ctx.project_id, ctx.user_id, size, str(Status.CREATING),
                 int(bootable), DEFAULT_TYPE, snapshot_id, source_volid, image_id, json.dumps(metadata),
                 json.dumps(image_metadata) if image_metadata else None, now, now],
            )  # fmt: skip
        self.submit("create", volume_id, args)
        return self.row(volume_id)  # type: ignore[return-value]

    def list_volumes(self, ctx: Context, filters: dict[str, str]) -> list[Volume]:
        where: list[str] = ["1"]
        params: list[Any] = []
        if filters.get("all_tenants") in ("1", "true", "True") and ctx.is_admin:
            project = filters.get("project_id")
            if project:
                where.append("project_id = ?")
                params.append(project)
        else:
            where.append("project_id = ?")
            params.append(ctx.project_id or "")
        for key in ("name", "status"):
            if filters.get(key):
                where.append(f"{key} = ?")
                params.append(filters[key])
        if filters.get("bootable"):
            where.append("bootable = ?")
            params.append(int(filters["bootable"].lower() in ("1", "true")))
        direction = "ASC" if filters.get("sort_dir") == "asc" else "DESC"
        rows = self.rows_where(
            " AND ".join(where) + f" ORDER BY created_at {direction}, id {direction}", params
        )
        if filters.get("metadata"):
            try:
                wanted = json.loads(filters["metadata"].replace("'", '"'))
            except ValueError:
                raise Invalid("metadata filter must be a JSON object.") from None
            rows = [v for v in rows if all(v.metadata.get(k) == val for k, val in wanted.items())]
        return rows

    def update(self, ctx: Context, volume_id: str, spec: dict[str, Any]) -> Volume:
        self.writable(ctx, volume_id)
        changes: dict[str, Any] = {}
        for key in ("name", "description"):
            if key in spec:
                changes[key] = _text(spec, key, 255 if key == "name" else 65535)
        if "metadata" in spec:
            changes["metadata"] = _metadata(spec["metadata"])
        if changes:
            self.set(volume_id, **changes)
        return self.get(ctx, volume_id)

    def set_metadata(
        self, ctx: Context, volume_id: str, items: Any, replace: bool
    ) -> dict[str, str]:
        volume = self.writable(ctx, volume_id)
        merged = _metadata(items) if replace else {**volume.metadata, **_metadata(items)}
        self.set(volume_id, metadata=merged)
        return merged

    def delete_metadata(self, ctx: Context, volume_id: str, key: str) -> None:
        volume = self.writable(ctx, volume_id)
        if key not in volume.metadata:
            raise NotFound(f"Metadata item was not found: {key}")
        self.set(volume_id, metadata={k: v for k, v in volume.metadata.items() if k != key})

    def set_bootable(self, ctx: Context, volume_id: str, bootable: Any) -> None:
        self.writable(ctx, volume_id)
        if not isinstance(bootable, bool) and str(bootable).lower() not in ("true", "false"):
            raise Invalid("bootable must be a boolean.")
        self.set(volume_id, bootable=int(str(bootable).lower() == "true"))

    def delete(self, ctx: Context, volume_id: str, cascade: bool, force: bool = False) -> None:
        volume = self.writable(ctx, volume_id)
        if volume.server_id or volume.status in (Status.IN_USE, Status.ATTACHING, Status.DETACHING):
            raise Invalid(
                f"Volume {volume_id} is attached to a server ({volume.status}); detach it first."
            )
        allowed = {Status.AVAILABLE, Status.ERROR, Status.ERROR_DELETING, Status.ERROR_EXTENDING}
        if volume.status not in allowed and not (force and ctx.is_admin):
            raise Invalid(
                f"Invalid volume: Volume status must be available or error or error_restoring or "
                f"error_extending or error_managing and must not be migrating, attached, belong to a "
                f"group, have snapshots or be disassociated from snapshots after volume transfer. "
                f"(status {volume.status})"
            )
        snaps = self.snapshot_rows_where("volume_id = ?", [volume_id])
        if snaps and not cascade:
            raise Invalid(f"Volume {volume_id} still has {len(snaps)} dependent snapshots.")
        if any(s.status not in (Status.AVAILABLE, Status.ERROR) for s in snaps):
            raise Invalid(f"A snapshot of volume {volume_id} is busy.")
        for snap in snaps:
            self.set_snapshot(snap.id, status=Status.DELETING)
        self.set(volume_id, status=Status.DELETING)
        self.submit("delete", volume_id, {"snapshots": [s.id for s in snaps]})

    def extend(self, ctx: Context, volume_id: str, new_size: Any) -> None:
        volume = self.writable(ctx, volume_id)
        size = _size(new_size)
        if size is None or size <= volume.size:
            raise Invalid(
                f"New size for extend must be greater than current size ({volume.size} GB)."
            )
        if volume.status not in (Status.AVAILABLE, Status.IN_USE):
            raise Invalid(
                f"Volume {volume_id} status must be available or in-use to extend ({volume.status})."
            )
        self.check_quota(volume.project_id, gigabytes=size - volume.size)
        self.set(volume_id, status=Status.EXTENDING)
        self.submit("extend", volume_id, {"size": size, "was": str(volume.status)})

    def upload_to_image(self, ctx: Context, volume_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        volume = self.writable(ctx, volume_id)
        if volume.status not in (Status.AVAILABLE, Status.IN_USE):
            raise Invalid(
                f"Volume {volume_id} status must be available or in-use ({volume.status})."
            )
        if volume.status == Status.IN_USE and not spec.get("force"):
            raise Invalid(f"Volume {volume_id} is in use; pass force to upload it anyway.")
        disk_format = spec.get("disk_format") or "raw"
        if disk_format not in ("raw", "qcow2"):
            raise Invalid("disk_format must be raw or qcow2.")
        image_spec: dict[str, Any] = {
            "name": spec.get("image_name") or f"volume-{volume_id}",
            "disk_format": disk_format,
            "container_format": spec.get("container_format") or "bare",
            "visibility": spec.get("visibility") or "private",
        }
        if spec.get("protected") is not None:
            image_spec["protected"] = bool(spec["protected"])
        for key, value in (volume.image_metadata or {}).items():
            if key in ("kernel_id", "ramdisk_id", "os_command_line", "hw_disk_bus"):
                image_spec[key] = value
        image = self.images.create(ctx, image_spec)
        was = volume.status
        self.set(volume_id, status=Status.UPLOADING)
        self.submit(
            "upload", volume_id, {"image_id": image.id, "format": disk_format, "was": str(was)}
        )
        return {
            "id": volume_id, "updated_at": stamp(), "status": "uploading", "display_description": volume.description,
            "size": volume.size, "volume_type": {"name": DEFAULT_TYPE, "id": DEFAULT_TYPE_ID},
            "image_id": image.id, "container_format": image_spec["container_format"],
            "disk_format": disk_format, "image_name": image_spec["name"],
            "protected": bool(spec.get("protected")), "visibility": image_spec["visibility"],
        }  # fmt: skip

    # -- snapshots -----------------------------------------------------------------------------

    def create_snapshot(self, ctx: Context, spec: dict[str, Any]) -> Snapshot:
        if ctx.project_id is None or not ctx.can_write:
            raise Forbidden("Creating snapshots requires the member role in a project.")
        volume = self.get(ctx, str(spec.get("volume_id") or ""))
        # Cinder 3.66 dropped the need for `force` on in-use volumes, and OSC's --force sends nothing
        # at 3.65; the copy is consistent either way (the guest is paused while it is taken).
        refused = str(spec.get("force", True)).lower() in ("false", "0")
        if volume.status == Status.IN_USE and refused:
            raise Invalid(
                f"Volume {volume.id} is in use; pass force to snapshot it while attached."
            )
        if volume.status not in (Status.AVAILABLE, Status.IN_USE):
            raise Invalid(
                f"Volume {volume.id} status must be available or in-use ({volume.status})."
            )
        self.check_quota(ctx.project_id, snapshots=1, gigabytes=volume.size)
        snap_id = str(uuid.uuid4())
        now = stamp()
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO volume_snapshots (id, volume_id, project_id, user_id, name, description, size, "
                "status, metadata, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [snap_id, volume.id, ctx.project_id, ctx.user_id, _text(spec, "name"),
                 _text(spec, "description", 65535), volume.size, str(Status.CREATING),
                 json.dumps(_metadata(spec.get("metadata"))), now, now],
            )  # fmt: skip
        self.submit("snapshot", volume.id, {"snapshot_id": snap_id})
        return self.snapshot_row(snap_id)  # type: ignore[return-value]

    def list_snapshots(self, ctx: Context, filters: dict[str, str]) -> list[Snapshot]:
        where: list[str] = ["1"]
        params: list[Any] = []
        if not (filters.get("all_tenants") in ("1", "true", "True") and ctx.is_admin):
            where.append("project_id = ?")
            params.append(ctx.project_id or "")
        for key in ("name", "status", "volume_id"):
            if filters.get(key):
                where.append(f"{key} = ?")
                params.append(filters[key])
        return self.snapshot_rows_where(
            " AND ".join(where) + " ORDER BY created_at DESC, id DESC", params
        )

    def update_snapshot(self, ctx: Context, snapshot_id: str, spec: dict[str, Any]) -> Snapshot:
        self.get_snapshot(ctx, snapshot_id)
        if not ctx.can_write:
            raise Forbidden("Policy doesn't allow this operation: the member role is required.")
        changes: dict[str, Any] = {}
        for key in ("name", "description"):
            if key in spec:
                changes[key] = _text(spec, key, 65535)
        if "metadata" in spec:
            changes["metadata"] = _metadata(spec["metadata"])
        if changes:
            self.set_snapshot(snapshot_id, **changes)
        return self.get_snapshot(ctx, snapshot_id)

    def delete_snapshot(self, ctx: Context, snapshot_id: str) -> None:
        snap = self.get_snapshot(ctx, snapshot_id)
        if not ctx.can_write:
            raise Forbidden("Policy doesn't allow this operation: the member role is required.")
        if snap.status not in (Status.AVAILABLE, Status.ERROR, Status.ERROR_DELETING):
            raise Invalid(
                f"Snapshot {snapshot_id} status must be available or error ({snap.status})."
            )
        self.set_snapshot(snapshot_id, status=Status.DELETING)
        self.submit("delete_snapshot", snapshot_id, {})

    # -- quota sets (Cinder's os-quota-sets) ---------------------------------------------------

    def quota_set(self, ctx: Context, project_id: str, usage: bool = False) -> dict[str, Any]:
        if project_id != ctx.project_id and not ctx.is_admin:
            raise Forbidden("Policy doesn't allow volume_extension:quotas:show to be performed.")
        limits = {name: self.limit(project_id, name) for name in RESOURCES}
        if not usage:
            return {
                **limits,
                "per_volume_gigabytes": -1,
                "backups": 0,
                "backup_gigabytes": 0,
                "groups": 0,
            }
        used = self.usage(project_id)
        return {name: {"limit": limits[name], "in_use": used[name], "reserved": 0, "allocated": 0}
                for name in RESOURCES}  # fmt: skip

    def update_quota(
        self, ctx: Context, project_id: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        if not ctx.is_admin:
            raise Forbidden("Policy doesn't allow volume_extension:quotas:update to be performed.")
        if not self.limits.identity.project_exists(project_id):
            raise NotFound(f"Project {project_id} could not be found.")
        service_id = self.limits._service_id(SERVICE_TYPE)
        for key, value in changes.items():
            if value is None or key in (
                "force",
                "per_volume_gigabytes",
                "backups",
                "backup_gigabytes",
                "groups",
            ):
                continue
            if key not in RESOURCES:
                raise Invalid(f"Bad key(s) {key} in quota_set")
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise Invalid(f"Quota limit {value} for {key} must be an integer of -1 or more.")
            self.limits.set_project_limit(ctx, project_id, service_id, key, value)
        return self.quota_set(ctx, project_id)

    # -- attachments (compute calls these; operations.py does the hot-plug) --------------------

    def reserve(self, ctx: Context, volume_id: str, server_id: str, project_id: str) -> Volume:
        volume = self.writable(ctx, volume_id)
        if volume.project_id != project_id:
            raise NotFound(f"Volume {volume_id} could not be found.")
        if volume.status != Status.AVAILABLE or volume.server_id:
            raise Conflict(
                f"Invalid volume: volume {volume_id} status must be 'available' to attach ({volume.status})."
            )
        self.set(volume_id, status=Status.ATTACHING, server_id=server_id,
                 attachment_id=str(uuid.uuid4()), attached_at=None)  # fmt: skip
        return self.row(volume_id)  # type: ignore[return-value]

    def attached_to(self, server_id: str) -> list[Volume]:
        return self.rows_where("server_id = ? ORDER BY attached_at, id", [server_id])


def image_meta(image: Any) -> dict[str, Any]:
    """volume_image_metadata: what Cinder copies from the image (cinder/volume/flows/manager/create_volume.py)."""
    meta: dict[str, Any] = {
        "image_id": image.id, "image_name": image.name, "disk_format": image.disk_format,
        "container_format": image.container_format, "min_ram": str(image.min_ram),
        "min_disk": str(image.min_disk), "size": str(image.size or 0), "checksum": image.checksum,
    }  # fmt: skip
    for key, value in image.properties.items():
        if not key.startswith("owner_specified."):
            meta[key] = str(value)
    return {k: v for k, v in meta.items() if v is not None}
