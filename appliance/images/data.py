"""Image data: upload, stage, import (glance-direct, web-download), download and removal.

Bytes stream to a temp blob, are inspected, and only then committed and the row made active; any
failure leaves no bytes and the image back in `queued` (or `killed` for an unexpected error).
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

from starlette.requests import ClientDisconnect

from appliance.blobs import CHUNK, Blobs, BlobTooLarge, Written
from appliance.context import Context
from appliance.errors import Conflict, Invalid, OverQuota
from appliance.images.inspect import ImageRejected, inspect
from appliance.images.models import Image, Status
from appliance.images.service import Images
from appliance.tasks import Jobs

log = logging.getLogger("nube.images")

IMPORT_METHODS = ("glance-direct", "web-download")


def blob_key(image_id: str) -> str:
    return f"image-{image_id}"


def stage_key(image_id: str) -> str:
    return f"stage-{image_id}"


class ImageData:
    def __init__(self, images: Images, blobs: Blobs, jobs: Jobs) -> None:
        self.images = images
        self.blobs = blobs
        self.jobs = jobs
        jobs.add_reconciler("images", self.reconcile)

    async def _receive(
        self, image: Image, chunks: AsyncIterable[bytes], restore: Status
    ) -> Written:
        limit = self.images.bytes_left(image.owner, excluding=image.id)
        try:
            # Glance publishes md5 (checksum) and sha512 (os_hash_value); sha256 would only cost time.
            return await self.blobs.write(chunks, limit, algorithms=("md5", "sha512"))
        except BlobTooLarge:
            self.images.set_status(image.id, restore)
            raise OverQuota(
                f"Denying attempt to upload image because it exceeds the quota of project {image.owner}."
            ) from None
        except (ClientDisconnect, asyncio.CancelledError):
            self.images.set_status(image.id, restore)
            log.info("image %s upload interrupted; back to %s", image.id, restore)
            raise
        except Exception:
            self.images.set_status(image.id, Status.KILLED)
            raise

    async def _activate(self, image: Image, written: Written, restore: Status) -> None:
        """Inspect, then commit bytes and row; on rejection keep nothing and restore the status."""
        try:
            found = await inspect(written.path, image.disk_format or "")
        except ImageRejected as exc:
            self.blobs.discard(written)
            self.images.set_status(image.id, restore)
            log.info("image %s rejected: %s", image.id, exc)
            raise Invalid(str(exc)) from None
        except BaseException:
            self.blobs.discard(written)
            self.images.set_status(image.id, Status.KILLED)
            raise
        key = blob_key(image.id)
        await self.blobs.place(written, key)
        if self.images.row(image.id) is None:  # deleted while uploading
            self.blobs.delete(key)
            return
        self.images.set_status(
            image.id,
            Status.ACTIVE,
            size=written.size,
            virtual_size=found.virtual_size,
            checksum=written.md5,
            os_hash_algo="sha512",
            os_hash_value=written.sha512,
            blob=key,
            staged_blob=None,
        )

    async def upload(self, ctx: Context, image_id: str, chunks: AsyncIterable[bytes]) -> None:
        image = self.images.begin_upload(ctx, image_id)
        self.images.set_status(image_id, Status.SAVING)
        written = await self._receive(image, chunks, Status.QUEUED)
        await self._activate(image, written, Status.QUEUED)

    async def upload_file(self, image_id: str, path: Path) -> None:
        """Upload a local file as an image's data (snapshots of servers); same checks as any upload."""
        image = self.images.row(image_id)
        if image is None or image.status != Status.QUEUED:
            raise Conflict(f"Image {image_id} is not queued for data.")
        self.images.set_status(image_id, Status.SAVING)

        async def chunks() -> AsyncIterator[bytes]:
            handle = await asyncio.to_thread(path.open, "rb")
            try:
                while data := await asyncio.to_thread(handle.read, CHUNK):
                    yield data
            finally:
                handle.close()

        written = await self._receive(image, chunks(), Status.QUEUED)
        await self._activate(image, written, Status.QUEUED)

    async def stage(self, ctx: Context, image_id: str, chunks: AsyncIterable[bytes]) -> None:
        image = self.images.begin_upload(ctx, image_id, staging=True)
        self.images.set_status(image_id, Status.UPLOADING)
        written = await self._receive(image, chunks, Status.QUEUED)
        await self.blobs.place(written, stage_key(image_id))
        self.images.set_status(image_id, Status.UPLOADING, staged_blob=stage_key(image_id))

    def start_import(self, ctx: Context, image_id: str, method: Any) -> None:
        """Begin an interoperable import (202): the job makes the image active or puts it back."""
        if not isinstance(method, dict) or method.get("name") not in IMPORT_METHODS:
            raise Invalid(f"Import method must be one of {', '.join(IMPORT_METHODS)}.")
        image = self.images.owned(ctx, image_id)
        if not image.disk_format or not image.container_format:
            raise Invalid(
                "Properties disk_format, container_format must be set prior to importing data."
            )
        if method["name"] == "glance-direct":
            if image.status != Status.UPLOADING or not image.staged_blob:
                raise Conflict("Image needs to be staged before 'glance-direct' import.")
            restore = Status.UPLOADING
            source: AsyncIterable[bytes] = self.blobs.read(image.staged_blob)
        else:
            uri = method.get("uri")
            if not isinstance(uri, str) or not uri.lower().startswith(("http://", "https://")):
                raise Invalid("web-download needs an http or https 'uri'.")
            if image.status != Status.QUEUED:
                raise Conflict(f"Image status {image.status} does not allow web-download import.")
            restore = Status.QUEUED
            source = _download(uri)
        self.images.set_status(image_id, Status.IMPORTING)

        async def run() -> None:
            written = await self._receive(image, source, restore)
            await self._activate(image, written, restore)
            if image.staged_blob:
                self.blobs.delete(image.staged_blob)

        def failed(exc: BaseException) -> None:
            current = self.images.row(image_id)
            if current is not None and current.status == Status.IMPORTING:
                self.images.set_status(image_id, restore)
            log.warning("image %s import (%s) failed: %s", image_id, method["name"], exc)

        self.jobs.submit("image", image_id, f"import:{method['name']}", run, failed)

    def remove(self, image: Image) -> None:
        for key in (image.blob, image.staged_blob):
            if key:
                self.blobs.delete(key)

    async def reconcile(self) -> None:
        """After a crash: uploads and imports that were running are gone; put their images back."""
        swept = self.blobs.sweep_tmp()
        for row in self.images._rows(
            "SELECT * FROM images WHERE status IN ('saving', 'importing')", []
        ):
            image = Image.from_row(row)
            back = (
                Status.UPLOADING
                if image.staged_blob and self.blobs.exists(image.staged_blob)
                else Status.QUEUED
            )
            self.images.set_status(image.id, back)
            log.info("image %s was %s when Nube stopped; now %s", image.id, image.status, back)
        if swept:
            log.info("removed %d partial blob(s)", swept)


async def _download(uri: str) -> AsyncIterator[bytes]:
    response = await asyncio.to_thread(urllib.request.urlopen, uri, timeout=30)
    try:
        while True:
            data = await asyncio.to_thread(response.read, CHUNK)
            if not data:
                break
            yield data
    finally:
        response.close()
