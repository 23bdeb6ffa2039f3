"""The overview's usage samples: a ring buffer per project, newest point always current."""

from __future__ import annotations

from appliance.console.history import History


def test_samples_closer_than_the_interval_refresh_the_newest_point() -> None:
    h = History(size=10, interval=5.0)
    h.record("p", {"Volumes": 0}, now=100.0)
    h.record("p", {"Volumes": 0}, now=101.0)
    h.record("p", {"Volumes": 1}, now=102.0)  # replaces the sample at 101
    assert h.series("p") == {"t": [100.0, 102.0], "series": {"Volumes": [0, 1]}}
    h.record("p", {"Volumes": 2}, now=106.0)  # 6 s after the first kept point: a new one
    assert h.series("p")["series"] == {"Volumes": [0, 1, 2]}


def test_the_buffer_keeps_the_latest_samples_of_each_project_apart() -> None:
    h = History(size=3, interval=1.0)
    for i in range(6):
        h.record("a", {"Instances": i}, now=float(10 * i))
    h.record("b", {"Instances": 7}, now=0.0)
    assert h.series("a")["series"] == {"Instances": [3, 4, 5]}
    assert h.series("b")["series"] == {"Instances": [7]}
    assert h.series("nobody") == {"t": [], "series": {}}
