"""Recent usage samples per project, for the overview's live charts.

A small ring buffer in the process (lost on restart, which is fine for "the last few minutes"). A
sample is taken when a page or the overview's script asks for usage: the values come from the same
service calls as the meters. Samples closer together than `interval` replace the newest one, so the
newest point always shows the state as of the last request and the buffer spans a few minutes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class Sample:
    at: float
    values: dict[str, int]


@dataclass
class History:
    size: int = 60
    interval: float = 5.0
    _projects: dict[str, deque[Sample]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, project: str, values: dict[str, int], now: float | None = None) -> None:
        at = time.time() if now is None else now
        with self._lock:
            ring = self._projects.setdefault(project, deque(maxlen=self.size))
            # Too close to the point before the newest: refresh the newest instead of adding one.
            if len(ring) >= 2 and at - ring[-2].at < self.interval:
                ring[-1] = Sample(at, dict(values))
            else:
                ring.append(Sample(at, dict(values)))

    def series(self, project: str) -> dict[str, object]:
        """The project's samples as columns: {"t": [epoch seconds], "series": {label: [values]}}."""
        with self._lock:
            samples = list(self._projects.get(project, ()))
        labels = list(samples[-1].values) if samples else []
        return {
            "t": [round(s.at, 1) for s in samples],
            "series": {label: [s.values.get(label, 0) for s in samples] for label in labels},
        }


__all__ = ["History", "Sample"]
