"""Snapshots of the stateful steps' per-key state."""

from __future__ import annotations

import pickle
from typing import TypeVar

S = TypeVar("S")


def freeze(state: object) -> bytes:
    """A step's state as Bytewax keeps it (``StatefulLogic.snapshot``): pickled, once, here.

    Bytewax holds a snapshot until the epoch's end and may write it to the
    recovery store later, so it must not change with later items. Bytes
    cannot, and pickling them again for the store is a copy. A copy of the
    state object instead (a pickle round trip, a third of ``copy.deepcopy``)
    cost two picklings and an unpickling; Bytewax takes a snapshot of every
    key each epoch touched, with or without recovery.
    """
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def thaw(resume: S | bytes | None) -> S | None:
    """A resume state as a step's builder gets it: a ``freeze``d snapshot,
    a state object (the snapshots of earlier releases, and tests), or None."""
    return pickle.loads(resume) if isinstance(resume, bytes) else resume
