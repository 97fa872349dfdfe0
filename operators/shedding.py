"""Load shedding for the knowledge stage: a bounded queue, oldest first, and a circuit breaker.

The knowledge job answers what a customer asked while the agent still
needs it; a card that comes late is worth little, and a stage that falls
behind must not fall further. Per activation (the requests the job read
since the last one), ``LoadShedder.admit`` decides which requests are
retrieved and which are shed, and says why:

1. ``shed.circuit_open``: the breaker is open (below); every request is shed
   until the cool-down ends, then one request per activation probes it.
2. ``shed.stale``: the request would be older than ``max_age_s`` (counted from
   when its turn reached the job's input: its Kafka timestamp, else when it
   was read) by the time its retrieval ends. Requests are served newest
   first, each expected to take the recent mean retrieval time, so under a
   backlog the oldest are the ones shed, and a request is never retrieved
   only to be late.
3. ``shed.queue_full``: more than ``queue_max`` requests are left: the newest
   ``queue_max`` are kept, the oldest are shed.

The breaker watches the stage's own retrieval latency: when the ``percentile``
of the last ``window`` retrievals exceeds ``breaker_ms``, it opens for
``cooldown_s``; a probe within ``breaker_ms`` closes it, a slow probe opens
it again. The shedder is per worker and not snapshotted: after a restart it
starts closed, with an empty window.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

QUEUE_FULL = "shed.queue_full"
STALE = "shed.stale"
CIRCUIT_OPEN = "shed.circuit_open"


@dataclass(frozen=True)
class ShedConfig:
    """See the ``COACH_KNOWLEDGE_SHED_*`` settings."""

    queue_max: int = 256
    """Requests retrieved per activation at most; older ones beyond are shed."""
    max_age_s: float = 5.0
    """A request older than this (from its input's arrival) is shed as stale."""
    breaker_ms: float = 50.0
    """The breaker opens when the recent retrievals' ``percentile`` exceeds this."""
    percentile: float = 95.0
    window: int = 50
    """Retrievals the breaker looks at (and needs before it can open)."""
    cooldown_s: float = 10.0
    """How long the breaker stays open before a probe."""


class LoadShedder(Generic[T]):
    """Which requests of an activation to retrieve; the breaker's state."""

    def __init__(self, config: ShedConfig, arrived_s: Callable[[T], float],
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._arrived_s = arrived_s
        self._clock = clock
        self._latencies: deque[float] = deque(maxlen=config.window)
        self.expected_ms = 5.0
        """The recent mean retrieval time per request (an exponential average)."""
        self.open_until: float | None = None
        self._probing = False
        self.shed: dict[str, int] = {QUEUE_FULL: 0, STALE: 0, CIRCUIT_OPEN: 0}

    @property
    def state(self) -> str:
        if self.open_until is None:
            return "closed"
        return "open" if self._clock() < self.open_until else "half_open"

    def admit(self, requests: Sequence[T]) -> tuple[list[T], list[tuple[T, str]]]:
        """(requests to retrieve, in arrival order; (request, reason) for the others)."""
        now = self._clock()
        shed: list[tuple[T, str]] = []
        state = self.state
        if state == "open":
            shed = [(request, CIRCUIT_OPEN) for request in requests]
            self._count(shed)
            return [], shed
        limit = 1 if state == "half_open" else self.config.queue_max
        newest_first = sorted(requests, key=self._arrived_s, reverse=True)
        admitted: list[T] = []
        finish = now
        for request in newest_first:
            if len(admitted) >= limit:
                shed.append((request, CIRCUIT_OPEN if state == "half_open" else QUEUE_FULL))
                continue
            if finish + self.expected_ms / 1000 - self._arrived_s(request) > self.config.max_age_s:
                shed.append((request, STALE))
                continue
            admitted.append(request)
            finish += self.expected_ms / 1000
        admitted.reverse()  # in arrival order again
        self._probing = state == "half_open" and bool(admitted)
        self._count(shed)
        return admitted, shed

    def observe(self, latencies_ms: Sequence[float]) -> None:
        """The retrieval latencies of the requests just admitted."""
        if not latencies_ms:
            return
        config = self.config
        mean = sum(latencies_ms) / len(latencies_ms)
        self.expected_ms += 0.2 * (mean - self.expected_ms)
        if self._probing:
            self._probing = False
            if max(latencies_ms) <= config.breaker_ms:
                self.open_until = None
                self._latencies.clear()
            else:
                self.open_until = self._clock() + config.cooldown_s
            return
        self._latencies.extend(latencies_ms)
        if len(self._latencies) < config.window:
            return
        ordered = sorted(self._latencies)
        at = min(len(ordered) - 1, int(len(ordered) * config.percentile / 100))
        if ordered[at] > config.breaker_ms:
            self.open_until = self._clock() + config.cooldown_s
            self._latencies.clear()

    def _count(self, shed: list[tuple[T, str]]) -> None:
        for _, reason in shed:
            self.shed[reason] += 1
