"""The knowledge stage's shedding policy: freshness budget, bounded batch, circuit breaker."""

from __future__ import annotations

from operators.shedding import CIRCUIT_OPEN, QUEUE_FULL, STALE, LoadShedder, ShedConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def shedder(clock, **config) -> LoadShedder:
    return LoadShedder(ShedConfig(**config), arrived_s=lambda request: request, clock=clock)


def test_everything_fresh_is_admitted_in_arrival_order():
    clock = Clock()
    s = shedder(clock)
    admitted, shed = s.admit([999.0, 999.5, 999.9])
    assert admitted == [999.0, 999.5, 999.9] and shed == [] and s.state == "closed"


def test_the_oldest_are_shed_when_they_would_be_late():
    clock = Clock()
    s = shedder(clock, max_age_s=1.0)
    s.expected_ms = 300.0  # each retrieval takes 0.3 s: newest first, the old ones cannot make it
    admitted, shed = s.admit([998.5, 999.0, 999.9, 999.95])
    assert admitted == [999.9, 999.95]
    assert sorted(shed) == [(998.5, STALE), (999.0, STALE)]
    assert s.shed[STALE] == 2


def test_a_full_batch_keeps_the_newest():
    clock = Clock()
    s = shedder(clock, queue_max=2)
    admitted, shed = s.admit([999.1, 999.3, 999.2, 999.4])
    assert admitted == [999.3, 999.4] and sorted(shed) == [(999.1, QUEUE_FULL), (999.2, QUEUE_FULL)]


def test_the_breaker_opens_on_slow_retrievals_then_a_probe_closes_it():
    clock = Clock()
    s = shedder(clock, breaker_ms=50, window=4, percentile=50, cooldown_s=10)
    s.observe([10, 80, 90, 100])
    assert s.state == "open"
    admitted, shed = s.admit([999.9, 999.95])
    assert admitted == [] and {reason for _, reason in shed} == {CIRCUIT_OPEN}
    clock.now += 11
    assert s.state == "half_open"
    admitted, shed = s.admit([clock.now - 0.2, clock.now - 0.1])
    assert admitted == [clock.now - 0.1] and shed == [(clock.now - 0.2, CIRCUIT_OPEN)]
    s.observe([200])  # a slow probe: open again
    assert s.state == "open"
    clock.now += 11
    s.admit([clock.now])
    s.observe([5])  # a quick probe: closed
    assert s.state == "closed"
    s.observe([10, 10, 10])  # the window restarts: three fast ones do not open it
    assert s.state == "closed"
