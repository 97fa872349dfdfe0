"""The cyclic garbage collector, tuned for a process that keeps what it loaded.

A job process loads the model's vocabularies, templates, policies and suites
once and keeps them for its whole run, while its feature caches keep growing
and turning over. CPython's collector walks every container object again in
each full collection; ``settle_heap`` takes what start-up left out of its
reach (``gc.freeze``) and makes young collections rarer. Reference counting
still frees everything as usual; only reference cycles among the frozen
start-up objects would outlive their use. ``bench/scoring.py`` and ``coach bench``
measure the effect (docs/performance.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Allocations between young-generation collections (CPython's default is
#: 700). Each collection walks whatever is alive then, and under a backlog most
#: young objects are the batch in flight, which survives the collection and is
#: walked again in the middle generation: rare young collections spare that walk.
YOUNG_THRESHOLD = 1_000_000


def settle_heap() -> None:
    """Freeze what is alive now and make young collections rarer, for the rest of the process."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


@contextmanager
def settled_heap() -> Iterator[None]:
    """``settle_heap`` for a block (a measurement inside a longer process), undone after it."""
    thresholds = gc.get_threshold()
    settle_heap()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
