"""Domain errors raised by services. No HTTP here: each API dialect maps them once, at the edge."""


class NubeError(Exception):
    """Base of every error a caller can cause. `message` is safe to show to the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(NubeError):
    """The request is malformed or breaks a rule of the API (400)."""


class Unauthorized(NubeError):
    """No valid credentials, or the credentials were refused (401)."""


class Forbidden(NubeError):
    """The caller is known but may not do this (403)."""


class NotFound(NubeError):
    """The resource does not exist, or belongs to a project the caller cannot see (404)."""


class Conflict(NubeError):
    """The request conflicts with the current state, e.g. a duplicate name (409)."""


class TooLarge(NubeError):
    """The request body is larger than the API accepts (413)."""


class UnsupportedMedia(NubeError):
    """The request body's Content-Type is not one this operation accepts (415)."""


class OverQuota(NubeError):
    """Creating this would exceed a project's quota."""


class NotAcceptable(NubeError):
    """The requested API (micro)version is not served (406)."""
