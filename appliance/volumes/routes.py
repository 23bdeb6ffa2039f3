"""Cinder v3 HTTP endpoints at /volume/v3, with or without the project id in the path (clients build
both forms from the catalog URL)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from appliance.cloud import cloud
from appliance.errors import Invalid, NotFound
from appliance.volumes import wire
from appliance.web.body import json_body, member
from appliance.web.microversions import microversion
from appliance.web.middleware import caller
from appliance.web.pagination import page_request, paginate

BODY_LIMIT = 1 << 20


def v(request: Request) -> tuple[int, int]:
    version = microversion(request)
    return (version.major, version.minor)


def base(request: Request) -> str:
    return cloud(request).api_base(request)


def ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


async def versions(request: Request) -> Response:
    return ok(wire.versions_json(base(request)), 300)


async def version(request: Request) -> Response:
    return ok(wire.versions_json(base(request)))


def _next(request: Request, kind: str, marker: str | None) -> dict[str, Any]:
    if marker is None:
        return {}
    params = [(k, val) for k, val in request.query_params.multi_items() if k != "marker"]
    params.append(("marker", marker))
    href = f"{base(request)}{request.url.path}?{urlencode(params)}"
    return {f"{kind}_links": [{"rel": "next", "href": href}]}


# -- volumes -----------------------------------------------------------------------------------


def _volume_list(request: Request, detail: bool) -> Response:
    ctx = caller(request)
    q = request.query_params
    found = cloud(request).volumes.list_volumes(ctx, dict(q))
    page = paginate(found, page_request(q), key=lambda vol: vol.id)
    body: dict[str, Any] = {
        "volumes": [
            wire.volume_json(vol, base(request), v(request), ctx.is_admin, detail)
            for vol in page.items
        ]
    }
    body.update(_next(request, "volumes", page.next_marker))
    if q.get("with_count") in ("true", "True", "1") and v(request) >= (3, 45):
        body["count"] = len(found)
    return ok(body)


async def volumes_index(request: Request) -> Response:
    return _volume_list(request, detail=False)


async def volumes_detail(request: Request) -> Response:
    return _volume_list(request, detail=True)


def _one(request: Request, volume: Any, status: int = 200) -> Response:
    return ok(
        {"volume": wire.volume_json(volume, base(request), v(request), caller(request).is_admin)},
        status,
    )


async def volumes_create(request: Request) -> Response:
    spec = wire.parse_create(await json_body(request, BODY_LIMIT))
    return _one(request, cloud(request).volumes.create(caller(request), spec), 202)


async def volumes_show(request: Request) -> Response:
    return _one(
        request, cloud(request).volumes.get(caller(request), request.path_params["volume_id"])
    )


async def volumes_update(request: Request) -> Response:
    spec = member(await json_body(request, BODY_LIMIT), "volume")
    spec = {("name" if k == "display_name" else "description" if k == "display_description" else k): val
            for k, val in spec.items()}  # fmt: skip
    volume = cloud(request).volumes.update(caller(request), request.path_params["volume_id"], spec)
    return _one(request, volume)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() in ("true", "1")


async def volumes_delete(request: Request) -> Response:
    cloud(request).volumes.delete(
        caller(request),
        request.path_params["volume_id"],
        _flag(request, "cascade"),
        _flag(request, "force"),
    )
    return Response(status_code=202)


async def volume_action(request: Request) -> Response:
    body = await json_body(request, BODY_LIMIT)
    if len(body) != 1:
        raise Invalid("There should be exactly one action in the request body.")
    action, args = next(iter(body.items()))
    ctx, volume_id, volumes = (
        caller(request),
        request.path_params["volume_id"],
        cloud(request).volumes,
    )
    args = args if isinstance(args, dict) else {}
    if action == "os-extend":
        volumes.extend(ctx, volume_id, args.get("new_size"))
        return Response(status_code=202)
    if action == "os-volume_upload_image":
        return ok({"os-volume_upload_image": volumes.upload_to_image(ctx, volume_id, args)}, 202)
    if action == "os-set_bootable":
        volumes.set_bootable(ctx, volume_id, args.get("bootable"))
        return Response(status_code=200)
    if action == "os-update_readonly_flag":
        volumes.writable(ctx, volume_id)
        return Response(status_code=202)
    raise Invalid(f"Volume action {action} is not supported.")


async def metadata_index(request: Request) -> Response:
    volume = cloud(request).volumes.get(caller(request), request.path_params["volume_id"])
    return ok({"metadata": volume.metadata})


async def metadata_set(request: Request) -> Response:
    body = await json_body(request, BODY_LIMIT)
    merged = cloud(request).volumes.set_metadata(
        caller(request),
        request.path_params["volume_id"],
        body.get("metadata"),
        request.method == "PUT",
    )
    return ok({"metadata": merged})


async def metadata_delete(request: Request) -> Response:
    cloud(request).volumes.delete_metadata(
        caller(request), request.path_params["volume_id"], request.path_params["key"]
    )
    return Response(status_code=200)


# -- snapshots ---------------------------------------------------------------------------------


def _snapshot_list(request: Request, detail: bool) -> Response:
    q = request.query_params
    found = cloud(request).volumes.list_snapshots(caller(request), dict(q))
    page = paginate(found, page_request(q), key=lambda s: s.id)
    body: dict[str, Any] = {
        "snapshots": [wire.snapshot_json(s, base(request), v(request), detail) for s in page.items]
    }
    body.update(_next(request, "snapshots", page.next_marker))
    return ok(body)


async def snapshots_index(request: Request) -> Response:
    return _snapshot_list(request, detail=False)


async def snapshots_detail(request: Request) -> Response:
    return _snapshot_list(request, detail=True)


async def snapshots_create(request: Request) -> Response:
    spec = member(await json_body(request, BODY_LIMIT), "snapshot")
    spec = {k: val for k, val in spec.items() if val is not None}
    snap = cloud(request).volumes.create_snapshot(caller(request), spec)
    return ok({"snapshot": wire.snapshot_json(snap, base(request), v(request))}, 202)


async def snapshots_show(request: Request) -> Response:
    snap = cloud(request).volumes.get_snapshot(caller(request), request.path_params["snapshot_id"])
    return ok({"snapshot": wire.snapshot_json(snap, base(request), v(request))})


async def snapshots_update(request: Request) -> Response:
    spec = member(await json_body(request, BODY_LIMIT), "snapshot")
    snap = cloud(request).volumes.update_snapshot(
        caller(request), request.path_params["snapshot_id"], spec
    )
    return ok({"snapshot": wire.snapshot_json(snap, base(request), v(request))})


async def snapshots_delete(request: Request) -> Response:
    cloud(request).volumes.delete_snapshot(caller(request), request.path_params["snapshot_id"])
    return Response(status_code=202)


# -- types, quotas, limits ---------------------------------------------------------------------


async def types_index(request: Request) -> Response:
    return ok({"volume_types": [wire.volume_type_json()]})


async def types_show(request: Request) -> Response:
    type_id = request.path_params["type_id"]
    if type_id not in ("default", wire.DEFAULT_TYPE, wire.DEFAULT_TYPE_ID):
        raise NotFound(f"Volume type {type_id} could not be found.")
    return ok({"volume_type": wire.volume_type_json()})


async def quotas_show(request: Request) -> Response:
    project_id = request.path_params["target_id"]
    usage = _flag(request, "usage")
    quota = cloud(request).volumes.quota_set(caller(request), project_id, usage)
    return ok({"quota_set": {"id": project_id, **quota}})


async def quotas_defaults(request: Request) -> Response:
    project_id = request.path_params["target_id"]
    from appliance.volumes.service import DEFAULT_LIMITS

    return ok({"quota_set": {"id": project_id, **DEFAULT_LIMITS, "per_volume_gigabytes": -1,
                             "backups": 0, "backup_gigabytes": 0, "groups": 0}})  # fmt: skip


async def quotas_update(request: Request) -> Response:
    spec = member(await json_body(request, BODY_LIMIT), "quota_set")
    quota = cloud(request).volumes.update_quota(
        caller(request), request.path_params["target_id"], spec
    )
    return ok({"quota_set": quota})


async def limits(request: Request) -> Response:
    ctx = caller(request)
    usage = cloud(request).volumes.quota_set(ctx, ctx.project_id or "", usage=True)
    absolute = {
        "maxTotalVolumes": usage["volumes"]["limit"], "totalVolumesUsed": usage["volumes"]["in_use"],
        "maxTotalSnapshots": usage["snapshots"]["limit"], "totalSnapshotsUsed": usage["snapshots"]["in_use"],
        "maxTotalVolumeGigabytes": usage["gigabytes"]["limit"],
        "totalGigabytesUsed": usage["gigabytes"]["in_use"],
        "maxTotalBackups": 0, "totalBackupsUsed": 0, "maxTotalBackupGigabytes": 0, "totalBackupGigabytesUsed": 0,
    }  # fmt: skip
    return ok({"limits": {"rate": [], "absolute": absolute}})


async def availability_zones(request: Request) -> Response:
    return ok({"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": True}}]})


_PLAIN: list[tuple[str, Any, list[str]]] = [
    ("/volumes", volumes_index, ["GET"]),
    ("/volumes", volumes_create, ["POST"]),
    ("/volumes/detail", volumes_detail, ["GET"]),
    ("/volumes/{volume_id}", volumes_show, ["GET"]),
    ("/volumes/{volume_id}", volumes_update, ["PUT"]),
    ("/volumes/{volume_id}", volumes_delete, ["DELETE"]),
    ("/volumes/{volume_id}/action", volume_action, ["POST"]),
    ("/volumes/{volume_id}/metadata", metadata_index, ["GET"]),
    ("/volumes/{volume_id}/metadata", metadata_set, ["PUT", "POST"]),
    ("/volumes/{volume_id}/metadata/{key}", metadata_delete, ["DELETE"]),
    ("/snapshots", snapshots_index, ["GET"]),
    ("/snapshots", snapshots_create, ["POST"]),
    ("/snapshots/detail", snapshots_detail, ["GET"]),
    ("/snapshots/{snapshot_id}", snapshots_show, ["GET"]),
    ("/snapshots/{snapshot_id}", snapshots_update, ["PUT"]),
    ("/snapshots/{snapshot_id}", snapshots_delete, ["DELETE"]),
    ("/types", types_index, ["GET"]),
    ("/types/{type_id}", types_show, ["GET"]),
    ("/os-quota-sets/{target_id}", quotas_show, ["GET"]),
    ("/os-quota-sets/{target_id}", quotas_update, ["PUT"]),
    ("/os-quota-sets/{target_id}/defaults", quotas_defaults, ["GET"]),
    ("/limits", limits, ["GET"]),
    ("/os-availability-zone", availability_zones, ["GET"]),
]

routes: list[BaseRoute] = [Route("/", version, methods=["GET"])]
routes += [Route(path, fn, methods=methods) for path, fn, methods in _PLAIN]
routes += [Route("/{project_id}" + path, fn, methods=methods) for path, fn, methods in _PLAIN]
