"""Object-store errors: S3's own error codes, which also say the HTTP status (and Swift's).

Not NubeError subclasses: S3 needs statuses (304, 412, 416, 501) that the shared dialects do not have.
The codes are those of https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html.
"""

from __future__ import annotations

STATUS = {
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "InvalidStorageClass": 400,
    "KeyTooLongError": 400,
    "MalformedXML": 400,
    "MalformedPolicy": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "NoSuchBucket": 404,
    "NoSuchBucketPolicy": 404,
    "NoSuchCORSConfiguration": 404,
    "NoSuchKey": 404,
    "NoSuchTagSet": 404,
    "NoSuchUpload": 404,
    "NoSuchVersion": 404,
    "NotImplemented": 501,
    "NotModified": 304,
    "PreconditionFailed": 412,
    "QuotaExceeded": 403,
    "RequestTimeTooSkewed": 403,
    "SignatureDoesNotMatch": 403,
    "XAmzContentSHA256Mismatch": 400,
    "InternalError": 500,
    "ServiceUnavailable": 503,
}


class S3Error(Exception):
    def __init__(self, code: str, message: str = "", **extra: str) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code
        self.status = STATUS.get(code, 400)
        # Extra elements for the XML body (BucketName, Key, ...) and response headers.
        self.extra = extra
        self.headers: dict[str, str] = {}
