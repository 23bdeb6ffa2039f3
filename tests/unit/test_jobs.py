"""Jobs: one job per resource, errors handed to on_error, one log line a job, reconcile, close."""

from __future__ import annotations

import asyncio
import logging

import pytest

from appliance.errors import Conflict
from appliance.tasks import Jobs


async def nothing() -> None:
    pass


def job_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "nube.jobs"]


# -- submit --------------------------------------------------------------------------------------


def test_submitted_job_runs() -> None:
    ran: list[str] = []

    async def build() -> None:
        ran.append("built")

    async def scenario() -> None:
        await Jobs().submit("server", "s-1", "build", build)

    asyncio.run(scenario())
    assert ran == ["built"]


def test_resource_is_busy_while_its_job_runs() -> None:
    async def scenario() -> bool:
        jobs = Jobs()
        gate = asyncio.Event()
        task = jobs.submit("server", "s-1", "build", gate.wait)
        await asyncio.sleep(0)
        busy = jobs.busy("server", "s-1")
        gate.set()
        await task
        return busy

    assert asyncio.run(scenario()) is True


def test_resource_is_free_once_its_job_ends() -> None:
    async def scenario() -> bool:
        jobs = Jobs()
        await jobs.submit("server", "s-1", "build", nothing)
        return jobs.busy("server", "s-1")

    assert asyncio.run(scenario()) is False


def test_second_job_on_a_busy_resource_is_a_conflict() -> None:
    async def scenario() -> None:
        jobs = Jobs()
        gate = asyncio.Event()
        task = jobs.submit("server", "s-1", "build", gate.wait)
        try:
            with pytest.raises(Conflict, match="server s-1 is busy"):
                jobs.submit("server", "s-1", "delete", nothing)
        finally:
            gate.set()
            await task

    asyncio.run(scenario())


def test_jobs_on_different_resources_run_side_by_side() -> None:
    async def scenario() -> None:
        jobs = Jobs()
        gate = asyncio.Event()
        first = jobs.submit("server", "s-1", "build", gate.wait)
        second = jobs.submit("server", "s-2", "build", gate.wait)
        third = jobs.submit("volume", "s-1", "create", gate.wait)
        gate.set()
        await asyncio.gather(first, second, third)

    asyncio.run(scenario())


def test_resource_accepts_a_new_job_after_the_last_one_ended() -> None:
    ran: list[str] = []

    async def delete() -> None:
        ran.append("deleted")

    async def scenario() -> None:
        jobs = Jobs()
        await jobs.submit("server", "s-1", "build", nothing)
        await jobs.submit("server", "s-1", "delete", delete)

    asyncio.run(scenario())
    assert ran == ["deleted"]


def test_job_cancelled_before_it_started_frees_its_resource() -> None:
    async def scenario() -> bool:
        jobs = Jobs()
        task = jobs.submit("server", "s-1", "build", nothing)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return jobs.busy("server", "s-1")

    assert asyncio.run(scenario()) is False


# -- errors --------------------------------------------------------------------------------------


def test_failing_job_hands_its_exception_to_a_sync_on_error() -> None:
    seen: list[BaseException] = []
    failure = RuntimeError("disk full")

    async def build() -> None:
        raise failure

    async def scenario() -> None:
        await Jobs().submit("server", "s-1", "build", build, on_error=seen.append)

    asyncio.run(scenario())
    assert seen == [failure]


def test_failing_job_awaits_an_async_on_error() -> None:
    seen: list[str] = []

    async def build() -> None:
        raise RuntimeError("disk full")

    async def mark_error(exc: BaseException) -> None:
        await asyncio.sleep(0)
        seen.append(f"ERROR: {exc}")

    async def scenario() -> None:
        await Jobs().submit("server", "s-1", "build", build, on_error=mark_error)

    asyncio.run(scenario())
    assert seen == ["ERROR: disk full"]


def test_successful_job_does_not_call_on_error() -> None:
    seen: list[BaseException] = []

    async def scenario() -> None:
        await Jobs().submit("server", "s-1", "build", nothing, on_error=seen.append)

    asyncio.run(scenario())
    assert seen == []


def test_failing_job_does_not_fail_its_task() -> None:
    async def build() -> None:
        raise RuntimeError("disk full")

    async def scenario() -> None:
        await Jobs().submit("server", "s-1", "build", build)

    asyncio.run(scenario())


def test_failing_error_handler_is_logged_and_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    async def build() -> None:
        raise RuntimeError("disk full")

    def broken_handler(exc: BaseException) -> None:
        raise ValueError("db gone")

    async def scenario() -> None:
        await Jobs().submit("server", "s-1", "build", build, on_error=broken_handler)

    caplog.set_level(logging.INFO, logger="nube.jobs")
    asyncio.run(scenario())
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "job server s-1: error handler failed"


def test_failing_job_frees_its_resource() -> None:
    async def build() -> None:
        raise RuntimeError("disk full")

    async def scenario() -> bool:
        jobs = Jobs()
        await jobs.submit("server", "s-1", "build", build)
        return jobs.busy("server", "s-1")

    assert asyncio.run(scenario()) is False


# -- the log line --------------------------------------------------------------------------------


def test_one_info_line_per_successful_job(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        await Jobs().submit("server", "s-1", "build", nothing)

    caplog.set_level(logging.INFO, logger="nube.jobs")
    asyncio.run(scenario())
    [line] = job_log(caplog)
    assert line.startswith("job server s-1 build ok ")
    assert line.endswith("ms")


def test_one_info_line_per_failed_job_names_the_error(caplog: pytest.LogCaptureFixture) -> None:
    async def build() -> None:
        raise RuntimeError("disk full")

    async def scenario() -> None:
        await Jobs().submit("server", "s-1", "build", build)

    caplog.set_level(logging.INFO, logger="nube.jobs")
    asyncio.run(scenario())
    [line] = job_log(caplog)
    assert line.startswith("job server s-1 build error: disk full ")


# -- reconcile -----------------------------------------------------------------------------------


def test_reconcile_runs_every_hook_in_registration_order() -> None:
    order: list[str] = []

    def hook(name: str):
        async def fn() -> None:
            order.append(name)

        return fn

    jobs = Jobs()
    jobs.add_reconciler("compute", hook("compute"))
    jobs.add_reconciler("volumes", hook("volumes"))
    asyncio.run(jobs.reconcile())
    assert order == ["compute", "volumes"]


def test_failing_reconcile_hook_does_not_stop_the_next(caplog: pytest.LogCaptureFixture) -> None:
    order: list[str] = []

    async def broken() -> None:
        raise RuntimeError("libvirt down")

    async def fine() -> None:
        order.append("volumes")

    jobs = Jobs()
    jobs.add_reconciler("compute", broken)
    jobs.add_reconciler("volumes", fine)
    caplog.set_level(logging.INFO, logger="nube.jobs")
    asyncio.run(jobs.reconcile())
    assert order == ["volumes"]
    assert "reconcile compute failed" in job_log(caplog)


# -- wait_idle and close -------------------------------------------------------------------------


def test_wait_idle_also_waits_for_jobs_submitted_by_jobs() -> None:
    done: list[str] = []

    async def scenario() -> None:
        jobs = Jobs()

        async def attach() -> None:
            await asyncio.sleep(0)
            done.append("attached")

        async def build() -> None:
            await asyncio.sleep(0)
            jobs.submit("volume", "v-1", "attach", attach)
            done.append("built")

        jobs.submit("server", "s-1", "build", build)
        await jobs.wait_idle()

    asyncio.run(scenario())
    assert done == ["built", "attached"]


def test_closed_jobs_refuse_new_work() -> None:
    async def scenario() -> None:
        jobs = Jobs()
        await jobs.close()
        with pytest.raises(Conflict, match="shutting down"):
            jobs.submit("server", "s-1", "build", nothing)

    asyncio.run(scenario())


def test_close_lets_a_job_within_the_grace_period_finish() -> None:
    done: list[str] = []

    async def build() -> None:
        await asyncio.sleep(0.01)
        done.append("built")

    async def scenario() -> None:
        jobs = Jobs()
        jobs.submit("server", "s-1", "build", build)
        await jobs.close(grace=5)

    asyncio.run(scenario())
    assert done == ["built"]


def test_close_cancels_a_job_that_outlives_the_grace_period() -> None:
    async def scenario() -> bool:
        jobs = Jobs()
        task = jobs.submit("server", "s-1", "build", asyncio.Event().wait)
        await jobs.close(grace=0.01)
        return task.cancelled()

    assert asyncio.run(scenario()) is True


def test_cancelled_job_is_logged_as_cancelled_and_skips_on_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[BaseException] = []

    async def scenario() -> None:
        jobs = Jobs()
        jobs.submit("server", "s-1", "build", asyncio.Event().wait, on_error=seen.append)
        await asyncio.sleep(0)
        await jobs.close(grace=0.01)

    caplog.set_level(logging.INFO, logger="nube.jobs")
    asyncio.run(scenario())
    assert seen == []
    [line] = job_log(caplog)
    assert line.startswith("job server s-1 build cancelled ")


def test_close_leaves_no_resource_busy() -> None:
    async def scenario() -> bool:
        jobs = Jobs()
        jobs.submit("server", "s-1", "build", asyncio.Event().wait)
        await jobs.close(grace=0.01)
        return jobs.busy("server", "s-1")

    assert asyncio.run(scenario()) is False
