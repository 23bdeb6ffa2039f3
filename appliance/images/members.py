"""Image members: sharing a `shared` image with other projects, who accept or reject it."""

from __future__ import annotations

import sqlite3
from typing import Any

from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound
from appliance.identity.models import iso, now
from appliance.images.models import Member, Visibility
from appliance.images.service import Images


class ImageMembers:
    def __init__(self, images: Images) -> None:
        self.images = images
        self.db = images.db

    def members(self, ctx: Context, image_id: str) -> list[Member]:
        image = self.images.get(ctx, image_id)
        if image.visibility != Visibility.SHARED:
            raise Forbidden("Only shared images have members.")
        rows = self.images._rows(
            "SELECT * FROM image_members WHERE image_id = ? ORDER BY created_at", [image_id]
        )
        if not (ctx.is_admin or image.owner == ctx.project_id):
            rows = [r for r in rows if r["member_id"] == ctx.project_id]
        return [Member(**r) for r in rows]

    def member(self, ctx: Context, image_id: str, member_id: str) -> Member:
        for m in self.members(ctx, image_id):
            if m.member_id == member_id:
                return m
        raise NotFound(f"Member {member_id} not found for image {image_id}.")

    def add_member(self, ctx: Context, image_id: str, member_id: Any) -> Member:
        image = self.images.owned(ctx, image_id)
        if image.visibility != Visibility.SHARED:
            raise Forbidden(
                f"Image {image_id} is not shared: set its visibility to shared to add members."
            )
        if not isinstance(member_id, str) or not member_id:
            raise Invalid("member must be a project id.")
        if not self.images.project_exists(member_id):
            raise NotFound(f"Project {member_id} not found.")
        stamp = iso(now())
        try:
            with self.db.atomic():
                self.db.execute(
                    "INSERT INTO image_members (image_id, member_id, status, created_at, updated_at) "
                    "VALUES (?,?,'pending',?,?)",
                    [image_id, member_id, stamp, stamp],
                )
        except sqlite3.IntegrityError:
            raise Conflict(
                f"Member {member_id} already associated with image {image_id}."
            ) from None
        return self.member(ctx, image_id, member_id)

    def set_member_status(self, ctx: Context, image_id: str, member_id: str, status: Any) -> Member:
        self.member(ctx, image_id, member_id)
        if ctx.project_id != member_id and not ctx.is_admin:
            raise Forbidden("Only the member project can accept or reject a shared image.")
        if status not in ("pending", "accepted", "rejected"):
            raise Invalid("status must be one of pending, accepted, rejected.")
        with self.db.atomic():
            self.db.execute(
                "UPDATE image_members SET status = ?, updated_at = ? WHERE image_id = ? AND member_id = ?",
                [status, iso(now()), image_id, member_id],
            )
        return self.member(ctx, image_id, member_id)

    def remove_member(self, ctx: Context, image_id: str, member_id: str) -> None:
        self.images.owned(ctx, image_id)
        self.member(ctx, image_id, member_id)
        with self.db.atomic():
            self.db.execute(
                "DELETE FROM image_members WHERE image_id = ? AND member_id = ?",
                [image_id, member_id],
            )
