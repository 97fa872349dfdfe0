"""librdkafka's log through Python ``logging``, for every Kafka client the project creates.

Without a ``logger``, librdkafka writes to stderr itself, and a broker that is
down or still starting yields a "Connection refused" line per client about
every 50 ms. ``client_config`` hands a client the ``coachflow.kafka`` logger;
its filter lets a broker's connection failure (librdkafka's ``FAIL``
facility) through once per ``WINDOW_S`` per process, as a warning that says
how many like it were held back, and its transient "...: retrying" warnings
as info; every other line (genuine errors included) passes at librdkafka's
own level. confluent-kafka forwards log lines when a
client is polled (``poll``, ``consume``, ``flush``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

LOGGER = logging.getLogger("coachflow.kafka")
WINDOW_S = 60.0
# librdkafka's per-attempt tail: "(after 0ms in state CONNECT)", "(..., 4 identical error(s) suppressed)".
_ATTEMPT = re.compile(r"\s*\(after \d+ms in state .*\)\s*$")


class RepeatedConnectionFailures(logging.Filter):
    """Passes a connection failure once per window and per message; counts the ones it holds back."""

    MAX_KEYS = 1000

    def __init__(self, window_s: float = WINDOW_S, clock=time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int]] = {}  # message -> (when it last passed, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 3):  # noqa: PLR2004 - librdkafka's (fac, name, msg)
            return True
        if record.levelno == logging.WARNING and str(args[2]).endswith(": retrying"):
            # librdkafka's own word that it retries (a coordinator still loading after a start).
            return _demote(record, logging.INFO)
        if args[0] != "FAIL":
            return True
        key = _ATTEMPT.sub("", str(args[2]))
        now = self._clock()
        with self._lock:
            last, held = self._seen.get(key, (None, 0))
            if last is not None and now - last < self.window_s:
                self._seen[key] = (last, held + 1)
                return False
            if len(self._seen) >= self.MAX_KEYS:
                self._seen.clear()
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} like it in the last {self.window_s:.0f} s not shown)"
        return _demote(record, logging.WARNING)  # librdkafka reconnects by itself: not an error


def _demote(record: logging.LogRecord, level: int) -> bool:
    """Give ``record`` a lower level; keep it only if its logger shows that level."""
    level = min(level, record.levelno)
    record.levelno, record.levelname = level, logging.getLevelName(level)
    return logging.getLogger(record.name).isEnabledFor(level)


LOGGER.addFilter(RepeatedConnectionFailures())


def client_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` for a confluent-kafka client, its log routed through ``coachflow.kafka``."""
    return {**config, "logger": LOGGER}
