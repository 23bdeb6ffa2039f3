"""Ranks on real threads: the nice value the kernel holds for each, read back with getpriority."""

from __future__ import annotations

import os
import threading

import pytest

from appliance.upload_order import LOW, Ranks, may_reprioritise


def nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


class Body(threading.Thread):
    """A thread inside `ranks.running(ticket)` until told to leave."""

    def __init__(self, ranks: Ranks, ticket: int) -> None:
        super().__init__()
        self.ranks, self.ticket = ranks, ticket
        self.inside, self.leave = threading.Event(), threading.Event()
        self.tid = 0

    def run(self) -> None:
        self.tid = threading.get_native_id()
        with self.ranks.running(self.ticket):
            self.inside.set()
            self.leave.wait(10)
        self.after = nice(self.tid)  # as the thread goes back to its pool

    def enter(self) -> Body:
        self.start()
        assert self.inside.wait(10)
        return self

    def finish(self) -> int:
        self.leave.set()
        self.join(10)
        return self.after


def test_all_but_the_oldest_bodies_run_at_lower_priority_until_older_ones_end() -> None:
    if os.geteuid() == 0:
        assert may_reprioritise()
    elif not may_reprioritise():
        pytest.skip("this process may not give a thread its priority back (needs CAP_SYS_NICE)")
    ranks = Ranks(cores=lambda: 2)
    base = os.getpriority(os.PRIO_PROCESS, 0)
    tickets = [ranks.ticket() for _ in range(4)]
    # the youngest starts first: places go by ticket, not by which thread came first
    youngest = Body(ranks, tickets[3]).enter()
    assert nice(youngest.tid) == base  # alone, it is among the oldest two
    bodies = [Body(ranks, t).enter() for t in tickets[:3]] + [youngest]
    assert [nice(b.tid) for b in bodies] == [base, base, base + LOW, base + LOW]
    assert bodies[1].finish() == base
    assert [nice(b.tid) for b in (bodies[0], bodies[2], bodies[3])] == [base, base, base + LOW]
    # a lowered thread that ends gets its own priority back
    assert bodies[3].finish() == base
    assert bodies[0].finish() == base
    assert bodies[2].finish() == base


def test_without_the_right_to_give_priority_back_no_thread_is_touched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ranks = Ranks(cores=lambda: 1)
    ranks.enabled = False
    calls: list[tuple[int, ...]] = []
    monkeypatch.setattr(os, "setpriority", lambda *a: calls.append(a))
    first, second = ranks.ticket(), ranks.ticket()
    a = Body(ranks, first).enter()
    b = Body(ranks, second).enter()
    a.finish(), b.finish()
    assert calls == []
