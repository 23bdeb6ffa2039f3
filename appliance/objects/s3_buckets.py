"""One async handler per S3 operation on the service and on buckets (settings, CORS preflight);
registered in s3_handlers.HANDLERS like the object operations."""

from __future__ import annotations

import json

from starlette.responses import Response

from appliance.objects import wire
from appliance.objects.errors import S3Error
from appliance.objects.policy import cors_rule, validate_policy
from appliance.objects.s3_handlers import handles, require_owner, require_signed_in, store_of
from appliance.objects.s3_routes import S3Request, canned_acl, small_body, xml

# -- service and buckets -------------------------------------------------------------------------


@handles("ListBuckets")
async def list_buckets(r: S3Request) -> Response:
    require_signed_in(r)
    assert r.caller is not None
    buckets = store_of(r).list_buckets(r.caller)
    return xml(wire.list_buckets_xml(r.caller.project_id or "", buckets))


@handles("CreateBucket")
async def create_bucket(r: S3Request) -> Response:
    require_signed_in(r)
    assert r.caller is not None
    await small_body(r)  # an optional CreateBucketConfiguration: any region is ours
    store_of(r).create_bucket(r.caller, r.op.bucket, r.headers.get("x-amz-acl", "private"))
    return Response(b"", 200, headers={"Location": f"/{r.op.bucket}"})


@handles("HeadBucket")
async def head_bucket(r: S3Request) -> Response:
    store_of(r).authorize(r.caller, r.op.bucket, "s3:ListBucket")
    return Response(b"", 200, headers={"x-amz-bucket-region": r.cloud.config.region})


@handles("DeleteBucket")
async def delete_bucket(r: S3Request) -> Response:
    require_signed_in(r)
    assert r.caller is not None
    require_owner(r, "s3:DeleteBucket")
    store_of(r).delete_bucket(r.caller, r.op.bucket)
    return Response(b"", 204)


@handles("GetBucketLocation")
async def get_location(r: S3Request) -> Response:
    store_of(r).authorize(r.caller, r.op.bucket, "s3:GetBucketLocation")
    return xml(wire.location_xml(r.cloud.config.region))


@handles("GetBucketVersioning")
async def get_versioning(r: S3Request) -> Response:
    require_owner(r, "s3:GetBucketVersioning")
    return xml(wire.versioning_xml(store_of(r).bucket(r.op.bucket).versioning))


@handles("PutBucketVersioning")
async def put_versioning(r: S3Request) -> Response:
    status = wire.parse_versioning(await small_body(r))
    store_of(r).set_bucket(r.caller, r.op.bucket, "s3:PutBucketVersioning", versioning=status)
    return Response(b"", 200)


@handles("GetBucketCors")
async def get_cors(r: S3Request) -> Response:
    require_owner(r, "s3:GetBucketCORS")
    bucket = store_of(r).bucket(r.op.bucket)
    if not bucket.cors:
        raise S3Error(
            "NoSuchCORSConfiguration",
            "The CORS configuration does not exist",
            BucketName=bucket.name,
        )
    return xml(wire.cors_xml(json.loads(bucket.cors)))


@handles("PutBucketCors")
async def put_cors(r: S3Request) -> Response:
    rules = wire.parse_cors(await small_body(r))
    store_of(r).set_bucket(r.caller, r.op.bucket, "s3:PutBucketCORS", cors=json.dumps(rules))
    return Response(b"", 200)


@handles("DeleteBucketCors")
async def delete_cors(r: S3Request) -> Response:
    store_of(r).set_bucket(r.caller, r.op.bucket, "s3:PutBucketCORS", cors=None)
    return Response(b"", 204)


@handles("GetBucketTagging")
async def get_bucket_tagging(r: S3Request) -> Response:
    require_owner(r, "s3:GetBucketTagging")
    bucket = store_of(r).bucket(r.op.bucket)
    if not bucket.tagging:
        raise S3Error("NoSuchTagSet", "The TagSet does not exist", BucketName=bucket.name)
    return xml(wire.tagging_xml(json.loads(bucket.tagging)))


@handles("PutBucketTagging")
async def put_bucket_tagging(r: S3Request) -> Response:
    tags = wire.parse_tagging(await small_body(r))
    store_of(r).set_bucket(r.caller, r.op.bucket, "s3:PutBucketTagging", tagging=json.dumps(tags))
    return Response(b"", 204)


@handles("DeleteBucketTagging")
async def delete_bucket_tagging(r: S3Request) -> Response:
    store_of(r).set_bucket(r.caller, r.op.bucket, "s3:PutBucketTagging", tagging=None)
    return Response(b"", 204)


@handles("GetBucketAcl")
async def get_bucket_acl(r: S3Request) -> Response:
    require_owner(r, "s3:GetBucketAcl")
    bucket = store_of(r).bucket(r.op.bucket)
    return xml(wire.acl_xml(bucket.project_id, bucket.acl))


@handles("PutBucketAcl")
async def put_bucket_acl(r: S3Request) -> Response:
    acl = await canned_acl(r)
    store_of(r).set_bucket(r.caller, r.op.bucket, "s3:PutBucketAcl", acl=acl)
    return Response(b"", 200)


@handles("GetBucketPolicy")
async def get_policy(r: S3Request) -> Response:
    require_owner(r, "s3:GetBucketPolicy")
    bucket = store_of(r).bucket(r.op.bucket)
    if not bucket.policy:
        raise S3Error(
            "NoSuchBucketPolicy", "The bucket policy does not exist", BucketName=bucket.name
        )
    return Response(bucket.policy, 200, media_type="application/json")


@handles("PutBucketPolicy")
async def put_policy(r: S3Request) -> Response:
    require_owner(r, "s3:PutBucketPolicy")
    text = (await small_body(r)).decode("utf-8", "replace")
    validate_policy(text)
    store_of(r).set_bucket(r.caller, r.op.bucket, "s3:PutBucketPolicy", policy=text)
    return Response(b"", 204)


@handles("DeleteBucketPolicy")
async def delete_policy(r: S3Request) -> Response:
    store_of(r).set_bucket(r.caller, r.op.bucket, "s3:PutBucketPolicy", policy=None)
    return Response(b"", 204)


@handles("Preflight")
async def preflight(r: S3Request) -> Response:
    origin = r.headers.get("origin", "")
    method = r.headers.get("access-control-request-method", "")
    rule = cors_rule(store_of(r).cors(r.op.bucket), origin, method)
    if rule is None:
        raise S3Error("AccessDenied", "CORSResponse: This CORS request is not allowed.")
    headers = {
        "Access-Control-Allow-Origin": "*" if "*" in rule["AllowedOrigin"] else origin,
        "Access-Control-Allow-Methods": ", ".join(rule["AllowedMethod"]),
    }
    wanted = r.headers.get("access-control-request-headers")
    if wanted:
        headers["Access-Control-Allow-Headers"] = wanted
    if "MaxAgeSeconds" in rule:
        headers["Access-Control-Max-Age"] = str(rule["MaxAgeSeconds"])
    return Response(b"", 200, headers=headers)
