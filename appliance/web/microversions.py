"""Microversion negotiation and echo (Nova `X-OpenStack-Nova-API-Version` / `OpenStack-API-Version`).

No header means the minimum; `latest` means the maximum; outside [min, max] is 406. The chosen version is
echoed on every response, errors included, with `Vary` (nova/api/openstack/wsgi.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.errors import Invalid, NotAcceptable
from appliance.web.dialects import Dialect

SCOPE_KEY = "nube.microversion"
_VERSION = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


@dataclass(frozen=True, slots=True, order=True)
class Version:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text.strip())
        if not match:
            raise Invalid(f"Invalid API version request string {text!r}.")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True, slots=True)
class Microversions:
    service: str  # "compute", "volume"
    min: Version
    max: Version
    legacy_header: str | None = None  # e.g. "X-OpenStack-Nova-API-Version"

    def requested(self, headers: Headers) -> str | None:
        for value in headers.getlist("openstack-api-version"):
            for part in value.split(","):
                words = part.split()
                if len(words) == 2 and words[0].lower() == self.service:
                    return words[1]
        if self.legacy_header:
            return headers.get(self.legacy_header)
        return None

    def negotiate(self, headers: Headers) -> Version:
        text = self.requested(headers)
        if text is None:
            return self.min
        if text.strip().lower() == "latest":
            return self.max
        version = Version.parse(text)
        if not self.min <= version <= self.max:
            raise NotAcceptable(
                f"Version {version} is not supported by the API. "
                f"Minimum is {self.min} and maximum is {self.max}."
            )
        return version

    def echo_headers(self, version: Version) -> dict[str, str]:
        headers = {"OpenStack-API-Version": f"{self.service} {version}"}
        vary = ["OpenStack-API-Version"]
        if self.legacy_header:
            headers[self.legacy_header] = str(version)
            vary.append(self.legacy_header)
        headers["Vary"] = ", ".join(vary)
        return headers


def microversion(request: Request) -> Version:
    """The version negotiated for this request by MicroversionMiddleware."""
    return request.scope[SCOPE_KEY]


class MicroversionMiddleware:
    """Negotiates before the API app runs, and echoes the result on whatever it answers."""

    def __init__(self, app: ASGIApp, versions: Microversions, dialect: Dialect) -> None:
        self.app = app
        self.versions = versions
        self.dialect = dialect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            version = self.versions.negotiate(Headers(scope=scope))
        except (Invalid, NotAcceptable) as exc:
            # Nova answers an unparsable or unserved version with 406 InvalidGlobalAPIVersion/400.
            response = self.dialect.error_response(Request(scope), exc)
            response.headers.update(self.versions.echo_headers(self.versions.min))
            await response(scope, receive, send)
            return
        scope[SCOPE_KEY] = version
        echo = self.versions.echo_headers(version)

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in echo.items():
                    headers[key] = value
            await send(message)

        await self.app(scope, receive, send_with_version)
