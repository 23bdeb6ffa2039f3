"""The one place long operations run: jobs on the event loop, one per resource, each logged once.

A service submits a job and returns at once with the resource in a transitional status. The job moves it
to its final status or to an error status (its `on_error`). Services register a `reconcile` hook that
runs at start-up, before any request, to repair rows a crash or restart left in a transitional state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from appliance.errors import Conflict

log = logging.getLogger("nube.jobs")

JobFn = Callable[[], Awaitable[None]]
ErrorFn = Callable[[BaseException], Awaitable[None] | None]
Reconcile = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class JobKey:
    kind: str  # e.g. "server"
    resource_id: str


class Jobs:
    def __init__(self) -> None:
        self._running: dict[JobKey, asyncio.Task[None]] = {}
        self._reconcilers: list[tuple[str, Reconcile]] = []
        self._closing = False

    def add_reconciler(self, name: str, fn: Reconcile) -> None:
        self._reconcilers.append((name, fn))

    async def reconcile(self) -> None:
        """Run every service's start-up repair, in registration order; one failing does not stop the rest."""
        for name, fn in self._reconcilers:
            started = time.monotonic()
            try:
                await fn()
            except Exception:
                log.exception("reconcile %s failed", name)
            else:
                log.info("reconcile %s ok %.0fms", name, (time.monotonic() - started) * 1000)

    def busy(self, kind: str, resource_id: str) -> bool:
        return JobKey(kind, resource_id) in self._running

    def current(self, kind: str, resource_id: str) -> asyncio.Task[None] | None:
        """The resource's running job, for a caller that must wait for it to end."""
        return self._running.get(JobKey(kind, resource_id))

    def submit(
        self, kind: str, resource_id: str, step: str, fn: JobFn, on_error: ErrorFn | None = None
    ) -> asyncio.Task[None]:
        """Start `fn` as the job of this resource; Conflict if the resource already has one."""
        key = JobKey(kind, resource_id)
        if self._closing:
            raise Conflict("Nube is shutting down; try again when it is back.")
        if key in self._running:
            raise Conflict(f"{kind} {resource_id} is busy with another operation.")
        task = asyncio.get_running_loop().create_task(self._run(key, step, fn, on_error))
        self._running[key] = task
        # A task cancelled before its first step never reaches _run's `finally`.
        task.add_done_callback(lambda done: self._forget(key, done))
        return task

    def _forget(self, key: JobKey, task: asyncio.Task[None]) -> None:
        if self._running.get(key) is task:
            del self._running[key]

    async def _run(self, key: JobKey, step: str, fn: JobFn, on_error: ErrorFn | None) -> None:
        started = time.monotonic()
        outcome = "ok"
        try:
            await fn()
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            outcome = f"error: {exc}"
            log.debug("job %s %s failed", key.kind, key.resource_id, exc_info=True)
            if on_error is not None:
                try:
                    result = on_error(exc)
                    if result is not None:
                        await result
                except Exception:
                    log.exception("job %s %s: error handler failed", key.kind, key.resource_id)
        finally:
            self._running.pop(key, None)
            log.info(
                "job %s %s %s %s %.0fms",
                key.kind,
                key.resource_id,
                step,
                outcome,
                (time.monotonic() - started) * 1000,
            )

    async def wait_idle(self) -> None:
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def close(self, grace: float = 10.0) -> None:
        """Refuse new jobs, give running ones `grace` seconds, then cancel them (reconcile repairs them)."""
        self._closing = True
        tasks = list(self._running.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
