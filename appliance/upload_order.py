"""Oldest uploads first: the threads receiving request bodies, ranked by when their request came.

Each large body written while others are is read, hashed and written by a thread of its own
(appliance.blobs `_pump_here`). With more of them than cores, the kernel shares the cores out
evenly, so they all end together, at the end: a client that prepares its next request only when
an answer comes back (boto3 reads and hashes each 8 MiB part before it sends a byte of it) then
has nothing on the wire for the server while it does, and the server's cores wait. Here the
threads of the oldest bodies, one per core this process may run on, keep their priority and the
others run at `LOW` more nice: the kernel runs the oldest whenever they have bytes to work on and
the others when they do not (it never leaves a core idle for priority's sake), so bodies end one
after another and each client starts its next part while the server works on the others. A
128 MiB boto3 upload (8 MiB parts, 8 at once) with the server held to one core ran 14 % faster in
12 of 12 alternating pairs; with two cores, or parts signed in advance, no change (within 1 %).

Nice is per thread on Linux. Giving a thread back the priority it had needs CAP_SYS_NICE (or an
RLIMIT_NICE): without it no thread is reprioritised and the cores are shared evenly, as before.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LOW = 5  # added to the nice of a body's thread that is not among the oldest


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def may_reprioritise() -> bool:
    """Whether this process may lower a thread's priority and give it back (tried on a
    throwaway thread, whose priority then does not matter)."""
    allowed: list[bool] = []

    def attempt() -> None:
        tid = threading.get_native_id()
        base = os.getpriority(os.PRIO_PROCESS, tid)
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, base + 1))
            os.setpriority(os.PRIO_PROCESS, tid, base)
        except OSError:
            return
        allowed.append(True)

    probe = threading.Thread(target=attempt, name="nube-nice-probe")
    probe.start()
    probe.join()
    return bool(allowed)


class Ranks:
    """Bodies being received, in the order of their `ticket`s; the threads of all but the oldest
    `cores()` run at `low` more nice."""

    def __init__(self, cores: Callable[[], int] = _cores, low: int = LOW) -> None:
        self.cores = cores
        self.low = low
        self.enabled = may_reprioritise()
        self._tickets = itertools.count()
        self._lock = threading.Lock()
        self._running: dict[int, tuple[int, int]] = {}  # ticket: (thread id, its own nice)
        self._lowered: set[int] = set()  # tickets whose thread now runs at its nice + low

    def ticket(self) -> int:
        """A place in line, taken when the request comes (on the event loop)."""
        return next(self._tickets)

    @contextmanager
    def running(self, ticket: int) -> Iterator[None]:
        """The calling thread receives the body that got `ticket` while inside."""
        if not self.enabled:
            yield
            return
        tid = threading.get_native_id()
        with self._lock:
            self._running[ticket] = (tid, os.getpriority(os.PRIO_PROCESS, tid))
            self._rank()
        try:
            yield
        finally:
            with self._lock:
                tid, own = self._running.pop(ticket)
                if ticket in self._lowered:
                    self._lowered.discard(ticket)
                    os.setpriority(os.PRIO_PROCESS, tid, own)  # a pool thread, used again
                self._rank()

    def _rank(self) -> None:
        top = self.cores()
        for place, ticket in enumerate(sorted(self._running)):
            tid, own = self._running[ticket]
            lower = place >= top
            if lower != (ticket in self._lowered):
                os.setpriority(os.PRIO_PROCESS, tid, min(19, own + self.low) if lower else own)
                (self._lowered.add if lower else self._lowered.discard)(ticket)
