"""Server actions with checks beyond the state machine (resize quotas, snapshot images), shared by the
Nova API and the web console so both apply the same rules."""

from __future__ import annotations

from typing import Any

from appliance.compute.flavors import Flavors
from appliance.compute.models import Task
from appliance.compute.quotas import Quotas
from appliance.compute.servers import Servers
from appliance.context import Context
from appliance.errors import Invalid, OverQuota
from appliance.images.models import Image
from appliance.images.service import Images


def resize(
    servers: Servers, flavors: Flavors, quotas: Quotas, ctx: Context, server_id: str, ref: Any
) -> None:
    if ref is None or ref == "":
        raise Invalid("Resize requests require 'flavorRef' attribute.")
    flavor = flavors.get(ctx, str(ref).rstrip("/").rsplit("/", 1)[-1])
    current = servers.get(ctx, server_id)
    if flavor.id == current.flavor.id:
        raise Invalid("When resizing, instances must change flavor!")
    if flavor.disk and current.flavor.disk and flavor.disk < current.flavor.disk:
        raise Invalid(
            "Resize to zero disk flavor is not allowed."
            if not flavor.disk
            else "Flavor's disk is too small for requested image."
        )
    problem = quotas.check_servers(current.project_id, 0, 0, 0)
    extra_vcpus, extra_ram = (
        flavor.vcpus - current.flavor.vcpus,
        flavor.ram - current.flavor.ram,
    )
    if extra_vcpus > 0 or extra_ram > 0:
        used = quotas.usage(current.project_id)
        for key, extra, resource in (
            ("cores", extra_vcpus, "class:VCPU"),
            ("ram", extra_ram, "class:MEMORY_MB"),
        ):
            limit = quotas.limit(current.project_id, resource)
            if extra > 0 and 0 <= limit < used[key] + extra:
                problem = f"Quota exceeded for {key}: Requested {extra}, but already used {used[key]} of {limit} {key}"
    if problem:
        raise OverQuota(problem)
    servers.act(ctx, server_id, "resize", {"flavor": flavor}, Task.RESIZE_PREP)


def snapshot(
    servers: Servers, images: Images, ctx: Context, server_id: str, spec: dict[str, Any]
) -> Image:
    """createImage: a snapshot image row now, its data from the job."""
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        raise Invalid("createImage requires a name.")
    server = servers.get(ctx, server_id)
    base_image = images.row(server.image_id or "")
    props: dict[str, Any] = {k: base_image.properties[k] for k in ("kernel_id", "ramdisk_id", "os_command_line", "os_distro")
             if base_image and k in base_image.properties}  # fmt: skip
    image_spec: dict[str, Any] = {
        "name": spec["name"], "disk_format": "qcow2", "container_format": "bare", "image_type": "snapshot",
        "instance_uuid": server.id, "base_image_ref": server.image_id or "", "user_id": ctx.user_id,
        **{k: str(val) for k, val in (spec.get("metadata") or {}).items()}, **props,
    }  # fmt: skip
    if ctx.is_admin and ctx.project_id != server.project_id:
        image_spec["owner"] = server.project_id
    image = images.create(ctx, image_spec)
    try:
        servers.act(ctx, server_id, "createImage", {"image_id": image.id}, Task.IMAGE_SNAPSHOT)
    except Exception:
        images.delete(ctx, image.id)
        raise
    return image
