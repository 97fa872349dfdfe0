"""The scaffold of the keyed stateful steps: one plain state per key, snapshotted once per epoch.

A keyed step's logic subclasses ``KeyedLogic``: its whole per-key state is
one picklable dataclass in ``state`` (fields of immutable values, or lists,
dicts and sets of them; an update replaces an element rather than changing
it). The base resumes from a snapshot, takes snapshots, and names what the
key holds; ``operators.boundary.keyed_step`` puts the logic behind its error
boundary in the dataflow.
"""

from __future__ import annotations

import pickle
from typing import Any, ClassVar, Generic, TypeVar

from bytewax.operators import StatefulLogic

S = TypeVar("S")
V = TypeVar("V")
W = TypeVar("W")


def freeze(state: object) -> bytes:
    """A step's state as Bytewax keeps it (``StatefulLogic.snapshot``): pickled, once, here.

    Bytewax holds a snapshot until the epoch's end and may write it to the
    recovery store later, so it must not change with later items; bytes
    cannot, and the store keeps them as they are.
    """
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def thaw(resume: S | bytes | None) -> S | None:
    """A resume state as a step's builder gets it: a ``freeze``d snapshot,
    a state object (snapshots written before ``freeze`` existed, and tests), or None."""
    return pickle.loads(resume) if isinstance(resume, bytes) else resume


class KeyedLogic(StatefulLogic[V, W, bytes], Generic[V, W, S]):
    """Base of a keyed step's logic: ``state`` is the key's whole state.

    :arg state: A snapshot (``freeze``d bytes), a state object, or None for a new key.
    """

    state_type: ClassVar[type]
    """The state's class: called with no argument, it makes the state of a new key."""

    def __init__(self, state: S | bytes | None = None) -> None:
        resumed = thaw(state)
        self.state: S = resumed if resumed is not None else self.state_type()

    def snapshot(self) -> bytes:
        return freeze(self.state)

    def held(self) -> list[Any]:
        """Inputs the key holds that have no decision yet (dead-lettered if the key must be dropped)."""
        return []
