"""A small synchronous client for the Nube APIs: Keystone password auth, the catalog, errors.

It is called only from Textual thread workers (see NubeApp.call), never on the UI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tui.credentials import Credentials

Json = dict[str, Any]
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
NOVA_VERSION = "2.96"
CHUNK = 1 << 16


class _Client(httpx.Client):
    """httpx.Client whose close() waits for the requests still running in worker threads, so no
    connection is handed back to a pool that is already closed (it would stay open, unowned)."""

    def __init__(self) -> None:
        super().__init__(timeout=TIMEOUT)
        self._idle = threading.Condition()
        self._running = 0
        self._closing = False

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        with self._idle:
            if self._closing:
                raise httpx.RequestError("the session is closed", request=request)
            self._running += 1
        try:
            return super().send(request, **kwargs)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def close(self) -> None:
        with self._idle:
            self._closing = True
            self._idle.wait_for(lambda: self._running == 0, timeout=TIMEOUT.read or 30.0)
        super().close()


class ApiError(Exception):
    """An API answered with an error: `message` is the API's own text, as the openstack CLI shows it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


def error_message(response: httpx.Response) -> str:
    """The message inside any of the dialects: Keystone {"error": {...}}, Nova/Cinder
    {"itemNotFound": {"message": ...}}, Neutron {"NeutronError": {...}}, Swift's plain text."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text.splitlines()[0] if text else response.reason_phrase
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and "message" in value:
                return str(value["message"])
        if "message" in body:
            return str(body["message"])
    return response.reason_phrase


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str


@dataclass
class Session:
    """A scoped token with its catalog; rescope() moves it to another project of the same user."""

    creds: Credentials
    http: httpx.Client = field(default_factory=_Client)
    token: str = ""
    user_id: str = ""
    user_name: str = ""
    project: Project | None = None
    roles: tuple[str, ...] = ()
    endpoints: dict[str, str] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def login(self, project_id: str | None = None) -> Session:
        user = {
            "name": self.creds.username,
            "domain": {"name": self.creds.user_domain},
            "password": self.creds.password,
        }
        auth: Json = {"identity": {"methods": ["password"], "password": {"user": user}}}
        if project_id:
            auth["scope"] = {"project": {"id": project_id}}
        elif self.creds.project_name:
            domain = {"name": self.creds.project_domain}
            auth["scope"] = {"project": {"name": self.creds.project_name, "domain": domain}}
        url = self.creds.auth_url.rstrip("/")
        if not url.endswith("/v3"):
            url += "/v3"
        r = self.http.post(f"{url}/auth/tokens", json={"auth": auth})
        if r.status_code != 201:
            raise ApiError(r.status_code, error_message(r))
        token = r.json()["token"]
        self.token = r.headers["X-Subject-Token"]
        self.user_id, self.user_name = token["user"]["id"], token["user"]["name"]
        scoped = token.get("project")
        self.project = Project(scoped["id"], scoped["name"]) if scoped else None
        self.roles = tuple(role["name"] for role in token.get("roles", []))
        self.endpoints = self._endpoints(token.get("catalog", []))
        self.endpoints.setdefault("identity", url.removesuffix("/v3"))
        return self

    def _endpoints(self, catalog: list[Json]) -> dict[str, str]:
        found: dict[str, str] = {}
        for service in catalog:
            for ep in service.get("endpoints", []):
                region_ok = not self.creds.region or ep.get("region_id") == self.creds.region
                if ep.get("interface") == self.creds.interface and region_ok:
                    found.setdefault(service["type"], ep["url"].rstrip("/"))
        return found

    def url(self, service: str, path: str) -> str:
        try:
            base = self.endpoints[service]
        except KeyError:
            raise ApiError(404, f"the catalog has no {service} endpoint") from None
        return base + path

    def request(self, method: str, service: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-Auth-Token": self.token, **kwargs.pop("headers", {})}
        if service == "compute":
            headers.setdefault("OpenStack-API-Version", f"compute {NOVA_VERSION}")
        r = self.http.request(method, self.url(service, path), headers=headers, **kwargs)
        if r.status_code >= 400:
            raise ApiError(r.status_code, error_message(r))
        return r

    def get(self, service: str, path: str, **kwargs: Any) -> Any:
        return self.request("GET", service, path, **kwargs).json()

    def post(self, service: str, path: str, body: Json | None = None) -> Any:
        r = self.request("POST", service, path, json=body)
        return r.json() if r.content else None

    def put(self, service: str, path: str, body: Json | None = None) -> Any:
        r = self.request("PUT", service, path, json=body)
        return r.json() if r.content and "json" in r.headers.get("content-type", "") else None

    def delete(self, service: str, path: str) -> None:
        self.request("DELETE", service, path)

    def upload(
        self, service: str, path: str, source: Path, progress: Callable[[int], None]
    ) -> None:
        """PUT a file in chunks, calling progress(bytes sent so far)."""

        def chunks() -> Iterator[bytes]:
            sent = 0
            with source.open("rb") as fh:
                while data := fh.read(CHUNK):
                    sent += len(data)
                    yield data
                    progress(sent)

        size = source.stat().st_size
        headers = {"Content-Length": str(size)}
        self.request("PUT", service, path, content=chunks(), headers=headers)

    def download(
        self, service: str, path: str, target: Path, progress: Callable[[int, int], None]
    ) -> int:
        """GET into target (through a temp file beside it), calling progress(done, total)."""
        headers = {"X-Auth-Token": self.token}
        tmp = target.with_name(f".{target.name}.part")
        with self.http.stream("GET", self.url(service, path), headers=headers) as r:
            if r.status_code >= 400:
                r.read()
                raise ApiError(r.status_code, error_message(r))
            total = int(r.headers.get("Content-Length", 0))
            done = 0
            with tmp.open("wb") as fh:
                for data in r.iter_bytes(CHUNK):
                    fh.write(data)
                    done += len(data)
                    progress(done, total)
        tmp.replace(target)
        return done

    def close(self) -> None:
        self.http.close()
