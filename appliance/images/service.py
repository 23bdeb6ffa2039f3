"""Image catalog state and policy, following Glance's rules for who sees and changes what.

Seen by a project: its own images, public and community ones, and shared ones it is a member of.
Listed by default: its own, public, and shared ones it accepted (community only when asked for).
Changed by: the owner project's members (and admins). Making an image public needs admin.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound, OverQuota
from appliance.identity.models import iso, now
from appliance.images.models import (
    CONTAINER_FORMATS,
    DISK_FORMATS,
    Image,
    Status,
    Visibility,
)

# Properties the API shows as top-level fields but users may not set through create or patch.
READ_ONLY = {
    "id", "status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size",
    "created_at", "updated_at", "file", "self", "schema", "direct_url", "locations",
    "os_glance_import_task", "stores",
}  # fmt: skip
BASE = {"name", "visibility", "protected", "os_hidden", "disk_format", "container_format",
        "min_disk", "min_ram", "tags", "owner"}  # fmt: skip
_PROPERTY = re.compile(r"^[^/]{1,255}$")

# Registered (default) limits, as Glance names them; sizes in MiB. Admins change them with
# `openstack registered limit set` or per project with `openstack limit create --service glance`.
DEFAULT_LIMITS = {
    "image_count_total": 1000,
    "image_count_uploading": 100,
    "image_size_total": 1024 * 1024,
    "image_stage_total": 1024 * 1024,
}

# (project_id, resource) -> the project's limit, -1 for unlimited (Keystone unified limits).
LimitFn = Callable[[str, str], int]


def _unlimited(project_id: str, resource_name: str) -> int:
    return -1


class Images:
    def __init__(
        self,
        db: Database,
        limit: LimitFn = _unlimited,
        project_exists: Callable[[str], bool] | None = None,
    ) -> None:
        self.db = db
        self.limit = limit
        self.project_exists = project_exists or (lambda _pid: True)

    # -- rows ------------------------------------------------------------------------------------

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def row(self, image_id: str) -> Image | None:
        rows = self._rows("SELECT * FROM images WHERE id = ?", [image_id])
        return Image.from_row(rows[0]) if rows else None

    def _set(self, image_id: str, **changes: Any) -> None:
        changes["updated_at"] = iso(now())
        columns = ", ".join(f"{k} = ?" for k in changes)
        with self.db.atomic():
            self.db.execute(
                f"UPDATE images SET {columns} WHERE id = ?", [*changes.values(), image_id]
            )

    def set_status(self, image_id: str, status: Status, **changes: Any) -> None:
        self._set(image_id, status=str(status), **changes)

    # -- policy ----------------------------------------------------------------------------------

    def member_status(self, image_id: str, project_id: str | None) -> str | None:
        if project_id is None:
            return None
        rows = self._rows(
            "SELECT status FROM image_members WHERE image_id = ? AND member_id = ?",
            [image_id, project_id],
        )
        return rows[0]["status"] if rows else None

    def visible(self, ctx: Context, image: Image) -> bool:
        if ctx.is_admin or image.owner == ctx.project_id:
            return True
        if image.visibility in (Visibility.PUBLIC, Visibility.COMMUNITY):
            return True
        return (
            image.visibility == Visibility.SHARED
            and self.member_status(image.id, ctx.project_id) is not None
        )

    def get(self, ctx: Context, image_id: str) -> Image:
        image = self.row(image_id)
        if image is None or image.status == Status.DELETED or not self.visible(ctx, image):
            raise NotFound(f"No image found with ID {image_id}")
        return image

    def owned(self, ctx: Context, image_id: str) -> Image:
        image = self.get(ctx, image_id)
        if not (ctx.is_admin or (image.owner == ctx.project_id and ctx.can_write)):
            raise Forbidden(f"You are not permitted to modify image {image_id}.")
        return image

    # -- create, list ----------------------------------------------------------------------------

    def _check_count(self, project_id: str) -> None:
        limit = self.limit(project_id, "image_count_total")
        if limit < 0:
            return
        (count,) = self.db.execute(
            "SELECT count(*) FROM images WHERE owner = ? AND status != 'deleted'", [project_id]
        ).fetchone()
        if count >= limit:
            raise OverQuota(
                f"Maximum number of images exceeded: the limit for project {project_id} is {limit}."
            )

    def create(self, ctx: Context, spec: dict[str, Any]) -> Image:
        if ctx.project_id is None or not ctx.can_write:
            raise Forbidden("Creating images requires the member role in a project.")
        for key in spec:
            if key in READ_ONLY:
                raise Forbidden(f"Attribute '{key}' is read-only.")
        owner = spec.get("owner") or ctx.project_id
        if owner != ctx.project_id and not ctx.is_admin:
            raise Forbidden("You are not permitted to create images owned by another project.")
        image_id = spec.get("id") or new_id_uuid()
        fields = _validated_base(spec, ctx, creating=True)
        properties = {k: v for k, v in spec.items() if k not in BASE and k != "id"}
        _check_properties(properties)
        self._check_count(owner)
        stamp = iso(now())
        try:
            with self.db.atomic():
                self.db.execute(
                    "INSERT INTO images (id, name, owner, status, visibility, protected, os_hidden, "
                    "disk_format, container_format, min_disk, min_ram, properties, tags, created_at, "
                    "updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        image_id,
                        fields.get("name"),
                        owner,
                        str(Status.QUEUED),
                        fields.get("visibility", str(Visibility.SHARED)),
                        int(fields.get("protected", False)),
                        int(fields.get("os_hidden", False)),
                        fields.get("disk_format"),
                        fields.get("container_format"),
                        fields.get("min_disk", 0),
                        fields.get("min_ram", 0),
                        json.dumps(properties),
                        json.dumps(sorted(set(fields.get("tags", [])))),
                        stamp,
                        stamp,
                    ],
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"Image with identifier {image_id} already exists!") from None
        image = self.row(image_id)
        assert image is not None
        return image

    def list_images(self, ctx: Context, filters: dict[str, Any]) -> list[Image]:
        """Images the caller may list, filtered; the route sorts and pages them."""
        rows = [
            Image.from_row(r)
            for r in self._rows("SELECT * FROM images WHERE status != 'deleted'", [])
        ]
        member_of = {
            r["image_id"]: r["status"]
            for r in self._rows(
                "SELECT image_id, status FROM image_members WHERE member_id = ?",
                [ctx.project_id or ""],
            )
        }
        wanted_visibility = filters.get("visibility")
        member_status = filters.get("member_status", "accepted")
        result = []
        for image in rows:
            if wanted_visibility not in (None, "all") and image.visibility != wanted_visibility:
                continue
            if not ctx.is_admin and image.owner != ctx.project_id:
                if image.visibility == Visibility.PRIVATE:
                    continue
                if image.visibility == Visibility.COMMUNITY and wanted_visibility != "community":
                    continue
                if image.visibility == Visibility.SHARED:
                    status = member_of.get(image.id)
                    if status is None or (member_status != "all" and status != member_status):
                        continue
            if not _matches(image, filters):
                continue
            result.append(image)
        return result

    # -- update, delete --------------------------------------------------------------------------

    def update(
        self, ctx: Context, image_id: str, changes: dict[str, Any], removed: set[str]
    ) -> Image:
        """Apply a JSON patch already reduced to the final values of the touched fields."""
        image = self.owned(ctx, image_id)
        for key in (*changes, *removed):
            if key in READ_ONLY:
                raise Forbidden(f"Attribute '{key}' is read-only.")
            if key in ("disk_format", "container_format") and image.status != Status.QUEUED:
                raise Forbidden(f"Attribute '{key}' can be only replaced for a queued image.")
            if key in BASE and key in removed:
                raise Forbidden(f"Attribute '{key}' cannot be removed.")
        base = _validated_base({k: v for k, v in changes.items() if k in BASE}, ctx, creating=False)
        properties = dict(image.properties)
        for key in removed:
            if key not in properties:
                raise Conflict(f"Property {key} does not exist.")
            del properties[key]
        extra = {k: v for k, v in changes.items() if k not in BASE}
        _check_properties(extra)
        properties.update(extra)
        columns: dict[str, Any] = {"properties": json.dumps(properties)}
        for key, value in base.items():
            if key == "tags":
                columns["tags"] = json.dumps(sorted(set(value)))
            elif key in ("protected", "os_hidden"):
                columns[key] = int(value)
            elif key == "owner":
                if not ctx.is_admin:
                    raise Forbidden("Only an admin may change an image's owner.")
                columns[key] = value
            else:
                columns[key] = str(value) if key == "visibility" else value
        self._set(image_id, **columns)
        return self.get(ctx, image_id)

    def delete(self, ctx: Context, image_id: str) -> Image:
        """Mark deleted and return the row; the caller removes its blobs."""
        image = self.owned(ctx, image_id)
        if image.protected:
            raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
        with self.db.atomic():
            self.db.execute("DELETE FROM images WHERE id = ?", [image_id])
        return image

    def set_tag(self, ctx: Context, image_id: str, tag: str, present: bool) -> None:
        image = self.owned(ctx, image_id)
        tags = set(image.tags)
        if present:
            if not tag or len(tag) > 255:
                raise Invalid("Tags must be 1 to 255 characters.")
            tags.add(tag)
        elif tag not in tags:
            raise NotFound(f"Tag {tag} not found on image {image_id}.")
        else:
            tags.discard(tag)
        self._set(image_id, tags=json.dumps(sorted(tags)))

    def deactivate(self, ctx: Context, image_id: str, active: bool) -> None:
        image = self.owned(ctx, image_id)
        if image.status not in (Status.ACTIVE, Status.DEACTIVATED):
            raise Forbidden(f"Not allowed to (de)activate an image in status '{image.status}'.")
        self.set_status(image_id, Status.ACTIVE if active else Status.DEACTIVATED)

    # -- data gates (the upload module does the byte work) ---------------------------------------

    def begin_upload(self, ctx: Context, image_id: str, staging: bool = False) -> Image:
        image = self.owned(ctx, image_id)
        if image.status != Status.QUEUED:
            raise Conflict(f"Image status transition from {image.status} to saving is not allowed")
        if not staging and (not image.disk_format or not image.container_format):
            raise Invalid(
                "Properties disk_format, container_format must be set prior to saving data."
            )
        self._check_count_uploading(image.owner)
        return image

    def _check_count_uploading(self, project_id: str) -> None:
        limit = self.limit(project_id, "image_count_uploading")
        if limit < 0:
            return
        (count,) = self.db.execute(
            "SELECT count(*) FROM images WHERE owner = ? AND status IN ('saving', 'importing')",
            [project_id],
        ).fetchone()
        if count >= limit:
            raise OverQuota(f"Maximum number of uploading images exceeded: the limit is {limit}.")

    def bytes_left(self, project_id: str, excluding: str | None = None) -> int | None:
        """How many more bytes the project may store (image_size_total is in MiB), None if unlimited."""
        limit = self.limit(project_id, "image_size_total")
        if limit < 0:
            return None
        (used,) = self.db.execute(
            "SELECT coalesce(sum(size), 0) FROM images WHERE owner = ? AND id != ? AND status != 'deleted'",
            [project_id, excluding or ""],
        ).fetchone()
        return max(0, limit * 1024 * 1024 - used)

    def downloadable(self, ctx: Context, image_id: str) -> Image:
        image = self.get(ctx, image_id)
        if image.status == Status.DEACTIVATED and not ctx.is_admin:
            raise Forbidden(
                "The requested image has been deactivated. Image data download is forbidden."
            )
        if (image.status != Status.ACTIVE and image.status != Status.DEACTIVATED) or not image.blob:
            raise NoContent(f"The requested image {image_id} has no data.")
        return image


class NoContent(Exception):
    """An image with no data: Glance answers 204 to a download."""


def new_id_uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def _validated_base(spec: dict[str, Any], ctx: Context, creating: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in spec:
        if spec["name"] is not None and (
            not isinstance(spec["name"], str) or len(spec["name"]) > 255
        ):
            raise Invalid("name must be a string of at most 255 characters.")
        out["name"] = spec["name"]
    if "visibility" in spec:
        try:
            visibility = Visibility(spec["visibility"])
        except ValueError:
            raise Invalid(f"Invalid visibility value: {spec['visibility']}") from None
        if visibility == Visibility.PUBLIC and not ctx.is_admin:
            raise Forbidden(
                "You are not authorized to publicize images: public images need an admin."
            )
        out["visibility"] = visibility
    for key in ("protected", "os_hidden"):
        if key in spec:
            if not isinstance(spec[key], bool):
                raise Invalid(f"{key} must be a boolean.")
            out[key] = spec[key]
    for key, allowed in (("disk_format", DISK_FORMATS), ("container_format", CONTAINER_FORMATS)):
        if key in spec and spec[key] is not None:
            if spec[key] not in allowed:
                raise Invalid(
                    f"Invalid value '{spec[key]}' for {key}: expected one of {', '.join(allowed)}."
                )
            out[key] = spec[key]
    for key in ("min_disk", "min_ram"):
        if key in spec:
            value = spec[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise Invalid(f"{key} must be a non-negative integer.")
            out[key] = value
    if "tags" in spec:
        tags = spec["tags"]
        if not isinstance(tags, list) or not all(
            isinstance(t, str) and 0 < len(t) <= 255 for t in tags
        ):
            raise Invalid("tags must be a list of strings of 1 to 255 characters.")
        out["tags"] = tags
    if "owner" in spec and not creating:
        out["owner"] = spec["owner"]
    return out


def _check_properties(properties: dict[str, Any]) -> None:
    for key, value in properties.items():
        if not _PROPERTY.match(key):
            raise Invalid(f"Invalid property name {key!r}.")
        if value is not None and not isinstance(value, str):
            raise Invalid(
                f"Property {key} must be a string (Glance stores extra properties as strings)."
            )


def _matches(image: Image, f: dict[str, Any]) -> bool:
    if "name" in f and image.name != f["name"]:
        return False
    if "status" in f and image.status != f["status"]:
        return False
    if "owner" in f and image.owner != f["owner"]:
        return False
    if "ids" in f and image.id not in f["ids"]:
        return False
    for tag in f.get("tags", ()):
        if tag not in image.tags:
            return False
    for key in ("disk_format", "container_format"):
        if key in f and getattr(image, key) != f[key]:
            return False
    if "protected" in f and image.protected != f["protected"]:
        return False
    if image.os_hidden != f.get("os_hidden", False) and "os_hidden" in f:
        return False
    if "os_hidden" not in f and image.os_hidden and "ids" not in f:
        return False
    if "size_min" in f and (image.size is None or image.size < f["size_min"]):
        return False
    if "size_max" in f and (image.size is None or image.size > f["size_max"]):
        return False
    for key, value in f.get("properties", {}).items():
        if image.properties.get(key) != value:
            return False
    return True
