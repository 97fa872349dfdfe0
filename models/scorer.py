"""Serving the ONNX model: vectorise features, run one session, rank and render.

``Vectorizer`` turns ``Features`` into the model's sparse inputs with
``operators.features.action_inputs`` / ``risk_inputs`` and the vocabularies
stored in the model; training builds its matrices with the very same object.
``OnnxScorer`` holds one onnxruntime session per process (Bytewax workers in a
process share it) and scores a whole batch per call.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import repeat
from operator import add, mul
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

from models.templates import TemplateBook
from operators.features import (
    NAMES,
    RISK_STATE_NAMES,
    RISK_TEXT_NAMES,
    WORD_PREFIXES,
    Features,
    FlowGraphs,
    Lexicon,
    Memo,
    NameParts,
    TextPart,
    action_done_parts,
    action_name_parts,
    action_text_parts,
    risk_state_values,
    risk_text_values,
    tokens,
)
from operators.scoring import Scores

if TYPE_CHECKING:
    from functools import _lru_cache_wrapper

#: Bump when action_inputs / risk_inputs change meaning; the model records it.
FEATURE_SPEC = "coachflow-features-2"
#: The registry's ``kind`` of models served by ``OnnxScorer``.
KIND = "onnx-mlp-ensemble"

Packed = bytes
"""Input indices packed as native int64 (8 bytes each). Cached parts are packed
once, rows are joined from them, and a batch becomes a tensor by copying
bytes, not by converting Python ints one by one."""


def indices_of(packed: Packed | array) -> list[int]:
    """The input indices in a packed row (or an ``array("q")``)."""
    return memoryview(packed).cast("B").cast("q").tolist()


class Vectorizer:
    """Named model inputs -> (index, value) rows, for training and serving alike.

    Action inputs are all valued 1.0 (``action_input_parts`` promises it), so
    an action row is its indices; risk inputs carry values. Rows are
    ``Packed`` and joined from cached parts:

    - name parts come from ``action_name_parts`` given the vectoriser's own
      ``NameParts``: the same names' indices, cached by the same arguments;
    - text parts are mapped without spelling out their names: a text's
      words become word ids once, and each prefix (``said``, ``recent_w``
      ...) maps word ids to its inputs' indices through a table; word pairs
      are looked up by their two ids;
    - what a point takes from the turns is remembered per conversation until
      its next point adds a turn.

    ``tests/unit/test_model.py`` checks that the rows hold exactly the
    inputs the named functions give, each once.
    """

    #: Entries per memo generation (see ``operators.features.Memo``): a long
    #: run sees ever new texts; a conversation's are needed while it lasts.
    MEMO_SIZE = 50_000
    #: Entries per generation of the per-conversation memos.
    CONVERSATIONS = 10_000

    def __init__(
        self,
        action_vocab: Sequence[str],
        risk_vocab: Sequence[str],
        graph: dict[str, dict[str, str]],
        lexicon: dict[str, float],
    ) -> None:
        self.action_vocab = list(action_vocab)
        self.risk_vocab = list(risk_vocab)
        self._packed = [
            i.to_bytes(8, _BYTE_ORDER, signed=True) for i in range(max(len(action_vocab), len(risk_vocab)))
        ]
        packed = self._packed
        self._action_index = {name: packed[i] for i, name in enumerate(self.action_vocab)}
        self._risk_index = {name: i for i, name in enumerate(self.risk_vocab)}
        self._action_words = _by_prefix(self.action_vocab, packed)
        self._risk_words = _by_prefix(self.risk_vocab, packed)
        # Every word a word prefix or a word pair of either head names gets an
        # id; a table per head and prefix holds each word id's packed input
        # index, or b"". Other words get the id ``_unknown`` (b"" everywhere).
        self._word_ids: dict[str, int] = {}
        for words in (self._action_words, self._risk_words):
            for prefix in WORD_PREFIXES:
                for word in words.get(prefix, ()):
                    self._word_ids.setdefault(word, len(self._word_ids))
            for pair in words.get("bigram", ()):
                for word in pair.split("_"):
                    self._word_ids.setdefault(word, len(self._word_ids))
        self._unknown = repeat(len(self._word_ids))
        self._action_tables = _tables(self._action_words, self._word_ids)
        self._risk_tables = _tables(self._risk_words, self._word_ids)
        # A word pair's key is ``first id * _pair_base + second id`` (unique,
        # since ids are below the base): pairs are looked up without strings.
        self._pair_base = len(self._word_ids) + 1
        self._base = repeat(self._pair_base)
        self._pair_ids = {
            head: {
                self._word_ids[first] * self._pair_base + self._word_ids[second]: index
                for pair, index in words.get("bigram", {}).items()
                for first, second in (pair.split("_"),)
            }
            for head, words in (("action", self._action_words), ("risk", self._risk_words))
        }
        # Valued risk inputs come as tuples in a fixed order: the packed
        # indices of those the model knows, and what picks their values.
        self._risk_text_indices, self._risk_text_pick = self._valued(RISK_TEXT_NAMES)
        self._risk_state_indices, self._risk_state_pick = self._valued(RISK_STATE_NAMES)
        self._risk_triggers: dict[str, tuple[Packed, array]] = {}  # trigger -> state indices, its value
        size = self.MEMO_SIZE
        # A customer's text comes back at later points of its conversation
        # (as what was said, among recent turns): its record holds its indices
        # under the parts most points need (``_RECORD``), computed once.
        self._records = Memo(size)  # text -> its record
        self._record_tables = [
            (self._action_tables if head == "action" else self._risk_tables)[prefix]
            for head, prefix in _RECORD if prefix != "bigram"
        ]
        # The name parts as packed indices, cached by the same arguments as the names.
        self._name_parts = NameParts._make(
            [*map(self._packing, NAMES[:-1]), b"".join(map(self._action_index.get, NAMES.no_words, _NOTHING))]
        )
        # Per head: where a text part's indices are in a record, the head's
        # name, its word tables and a memo of (prefix, text) -> indices for the
        # parts records do not hold.
        self._action_head = (
            {prefix: k for k, (head, prefix) in enumerate(_RECORD) if head == "action"},
            "action", self._action_tables, Memo(size),
        )
        self._risk_head = (
            {prefix: k for k, (head, prefix) in enumerate(_RECORD) if head == "risk"},
            "risk", self._risk_tables, Memo(size),
        )
        # Per conversation: its latest point's turns and the inputs they gave,
        # needed only until its next point (a few kB each, so fewer kept).
        self._history_action = Memo(self.CONVERSATIONS)
        self._history_risk = Memo(self.CONVERSATIONS)
        self._done = Memo(self.CONVERSATIONS)  # conversation -> (task, actions, their done indices)
        self.flows = FlowGraphs(graph)
        self.lexicon = Lexicon(lexicon)

    def _valued(self, names: Sequence[str]) -> tuple[Packed, Callable[[tuple], tuple]]:
        """The packed indices of the named risk inputs the model knows, and a picker of their values."""
        known = [k for k, name in enumerate(names) if name in self._risk_index]
        packed = b"".join(self._packed[self._risk_index[names[k]]] for k in known)
        if len(known) == len(names):
            return packed, _same
        return packed, lambda values: tuple([values[k] for k in known])

    def _ids(self, text: str) -> list[int]:
        """The word ids of a text's tokens, in order."""
        return list(map(self._word_ids.get, tokens(text), self._unknown))

    def _pairs(self, ids: list[int], head: str) -> tuple[Packed, ...]:
        """The packed indices of the word pairs of a text (by its word ids), each once."""
        keys = dict.fromkeys(map(add, map(mul, ids, self._base), ids[1:]))
        return tuple(filter(None, map(self._pair_ids[head].get, keys, _NOTHING)))

    def _record_of(self, text: str) -> tuple[tuple[Packed, ...], ...]:
        """``_record``, remembered by text."""
        records = self._records
        return records.get(text) or records.recall(text) or records.keep(text, self._record(text))

    def _record(self, text: str) -> tuple[tuple[Packed, ...], ...]:
        """A text's packed indices under each ``_RECORD`` part, in that order."""
        ids = self._ids(text)
        unique = dict.fromkeys(ids)
        out = [tuple(filter(None, map(table.__getitem__, unique))) for table in self._record_tables]
        out.append(self._pairs(ids, "action"))
        return tuple(out)

    def _map_text(self, prefix: str, text: str, head: str, tables: dict) -> tuple[Packed, ...]:
        """The packed indices of one text's inputs under a prefix, each once."""
        if prefix == "bigram":
            return self._pairs(self._ids(text), head)
        table = tables.get(prefix)
        if table is None:  # a prefix the model does not know
            return ()
        return tuple(filter(None, map(table.__getitem__, dict.fromkeys(self._ids(text)))))

    def _texts_indices(self, part: TextPart, head) -> Packed:
        """Indices of a text part's inputs, each once (several texts' are united as a set).

        From the texts' records where they hold the part, else mapped and
        remembered by prefix and text.
        """
        prefix, texts = part
        field = head[0].get(prefix)
        if field is not None:
            if len(texts) == 1:
                return b"".join(self._record_of(texts[0])[field])
            return b"".join(set().union(*[self._record_of(text)[field] for text in texts]))
        if len(texts) == 1:
            return b"".join(self._mapped(prefix, texts[0], head))
        return b"".join(set().union(*[self._mapped(prefix, text, head) for text in texts]))

    def _mapped(self, prefix: str, text: str, head) -> tuple[Packed, ...]:
        """``_map_text``, remembered by prefix and text."""
        memo = head[3]
        key = (prefix, text)
        hit = memo.get(key)
        if hit is None:
            hit = memo.recall(key)
            if hit is None:
                hit = memo.keep(key, self._map_text(prefix, text, head[1], head[2]))
        return hit

    def _packing(self, names: Callable[..., tuple[str, ...]]) -> Callable[..., Packed]:
        """``names`` (a cached function giving a name tuple) as packed indices, cached by the same arguments.

        This cache stands in for the names' own, so it calls the function unwrapped.
        """
        index = self._action_index.get
        cached = cast("_lru_cache_wrapper[tuple[str, ...]]", names)  # NAMES' functions are lru_cache'd
        names_of = cached.__wrapped__

        @lru_cache(maxsize=cached.cache_info().maxsize)
        def packed(*args) -> Packed:
            return b"".join(map(index, names_of(*args), _NOTHING))

        return packed

    def action_row(self, features: Features) -> Packed:
        """Indices of the point's action inputs, each once (in no particular order).

        The action head sums its inputs' integer embedding rows, so their
        order does not change a score. ``action_input_parts`` promises that
        no input is in two parts, so the parts' indices are joined.
        The indices from the turns are remembered per conversation: its next
        point reuses them if it adds no turn (a knowledge-base result, a task
        choice).
        """
        key = (features.history, features.first_customer_text)
        seen = self._history_action.get(features.conversation_id)
        if seen is not None and seen[0] == key:
            last, text_indices = seen[1]
        else:
            last, texts = action_text_parts(features)
            text_indices = b"".join([self._texts_indices(part, self._action_head) for part in texts])
            self._history_action.keep(features.conversation_id, (key, (last, text_indices)))
        row = [text_indices, self._done_indices(features)]
        row += action_name_parts(features, self.flows, last, self._name_parts)
        return b"".join(row)

    def _done_indices(self, features: Features) -> Packed:
        """Indices of ``action_done_parts``, extended per conversation as its actions grow."""
        actions, task = features.actions_so_far, features.task
        seen = self._done.get(features.conversation_id)
        if seen is not None and seen[0] == task and actions[: len(seen[1])] == seen[1]:
            if len(actions) == len(seen[1]):
                return seen[2]
            indices = seen[2] + b"".join(action_done_parts(actions[len(seen[1]):], task, self._name_parts))
        else:
            indices = b"".join(action_done_parts(actions, task, self._name_parts))
        self._done.keep(features.conversation_id, (task, actions, indices))
        return indices

    def risk_row(self, features: Features) -> tuple[Packed, array]:
        """Packed indices and float32 values (``array("f")``) of the point's risk inputs, each once.

        Inputs from the state come first, then those from the turns
        (remembered per conversation like the action inputs'); no name is in
        both. Valued inputs are always in the row, zeros included: the risk
        head is linear in its inputs, so a zero input and an absent one score
        alike, and the row's layout is fixed up to its words.
        """
        key = (features.history, features.last_customer_text)
        seen = self._history_risk.get(features.conversation_id)
        if seen is not None and seen[0] == key:
            turn_indices, turn_values = seen[1]
        else:
            text_values, texts = risk_text_values(features, self.lexicon)
            # Word inputs never share a name with valued ones, nor across prefixes.
            words = b"".join([self._texts_indices(part, self._risk_head) for part in texts])
            turn_indices = self._risk_text_indices + words
            turn_values = array("f", self._risk_text_pick(text_values))
            turn_values += _ONE * (len(words) // 8)
            self._history_risk.keep(features.conversation_id, (key, (turn_indices, turn_values)))
        trigger = self._risk_triggers.get(features.trigger)
        if trigger is None:
            j = self._risk_index.get(f"trigger={features.trigger}")
            trigger = self._risk_triggers[features.trigger] = (
                (self._risk_state_indices, array("f"))
                if j is None
                else (self._risk_state_indices + self._packed[j], _ONE)
            )
        values = array("f", self._risk_state_pick(risk_state_values(features)))
        values += trigger[1]
        return trigger[0] + turn_indices, values + turn_values

    def rows(self, batch: Sequence[Features]) -> tuple[list[Packed], list[tuple[Packed, array]]]:
        """Action and risk rows of a batch.

        Escalation risk is about the customer's latest turn, so only customer
        turns get risk inputs; other points get an empty row (and no risk).
        """
        action = [self.action_row(f) for f in batch]
        risk = [self.risk_row(f) if f.trigger == "customer_turn" else _EMPTY_ROW for f in batch]
        return action, risk

    def padded(self, batch: Sequence[Features]) -> dict[str, np.ndarray]:
        """The four input tensors of a batch; rows are padded with (index 0, value 0)."""
        return tensors(*self.rows(batch))

    def csr(self, batch: Sequence[Features], head: str):
        """A SciPy CSR matrix of one head's inputs (for training)."""
        from scipy import sparse

        if head == "action":
            rows = [self.action_row(f) for f in batch]
            width = len(self.action_vocab)
            indices = np.frombuffer(b"".join(rows), dtype=np.int64)
            values = np.ones(len(indices), dtype=np.float32)
        else:
            pairs = [self.risk_row(f) for f in batch]
            rows = [i for i, _ in pairs]
            width = len(self.risk_vocab)
            indices = np.frombuffer(b"".join(rows), dtype=np.int64)
            values = np.frombuffer(b"".join(v for _, v in pairs), dtype=np.float32)
        indptr = np.cumsum([0] + [memoryview(r).nbytes // 8 for r in rows])
        return sparse.csr_matrix((values, indices, indptr), shape=(len(rows), width))


_BYTE_ORDER: Literal["little", "big"] = "little" if np.little_endian else "big"
_NOTHING = repeat(b"")
_ONE = array("f", [1.0])


def _same(values: tuple) -> tuple:
    return values


#: The (head, prefix) text parts a text's record holds: those of the customer's
#: latest turn and of what they said before (see ``Vectorizer._record``); word
#: pairs last.
_RECORD = (("action", "w"), ("action", "said"), ("risk", "w"), ("risk", "recent_w"), ("action", "bigram"))


def _tables(words: dict[str, dict[str, Packed]], word_ids: dict[str, int]) -> dict[str, list[Packed]]:
    """Per word prefix, each word id's packed input index (b"" where the prefix does not name the word)."""
    tables = {}
    for prefix in WORD_PREFIXES:
        table = [b""] * (len(word_ids) + 1)  # the last for unknown words
        for word, index in words.get(prefix, {}).items():
            table[word_ids[word]] = index
        tables[prefix] = table
    return tables


def _by_prefix(vocab: Sequence[str], packed: list[Packed]) -> dict[str, dict[str, Packed]]:
    """``{"w": {"refund": <17 packed>, ...}, ...}`` for every ``prefix=key`` name."""
    out: dict[str, dict[str, Packed]] = {}
    for i, name in enumerate(vocab):
        prefix, sep, key = name.partition("=")
        if sep:
            out.setdefault(prefix, {})[key] = packed[i]
    return out


_EMPTY_ROW: tuple[Packed, array] = (b"", array("f"))


def tensors(action: list[Packed], risk: list[tuple[Packed, array]]) -> dict[str, np.ndarray]:
    """The model's four input tensors for these rows."""
    action_idx, action_mask = _pad(action, np.fromiter(map(len, action), np.int64, len(action)) // 8, None)
    indices = [i for i, _ in risk]
    risk_idx, risk_val = _pad(
        indices, np.fromiter(map(len, indices), np.int64, len(indices)) // 8, [v for _, v in risk]
    )
    return {"action_idx": action_idx, "action_mask": action_mask, "risk_idx": risk_idx, "risk_val": risk_val}


def _pad(
    indices: list[Packed], lengths: np.ndarray, values: list[array] | None
) -> tuple[np.ndarray, np.ndarray]:
    """[N, K] index and value arrays of rows of these lengths.

    ``values=None`` gives a uint8 mask of ones instead.
    """
    width = max(1, int(lengths.max(initial=0)))
    filled = np.arange(width) < lengths[:, None]  # row-major, as the rows are joined
    idx = np.zeros((len(indices), width), dtype=np.int64)
    idx[filled] = np.frombuffer(b"".join(indices), dtype=np.int64)
    if values is None:
        return idx, filled.view(np.uint8)
    val = np.zeros((len(indices), width), dtype=np.float32)
    val[filled] = np.frombuffer(b"".join(values), dtype=np.float32)
    return idx, val


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns of each row, best first (ties to the lower column), and their values.

    k passes of argmax: for the 3 of ~160 labels served, cheaper than
    argpartition and a sort per row.
    """
    k = min(k, probs.shape[1])
    rows = np.arange(len(probs))
    work = probs.copy()
    top = np.empty((len(probs), k), dtype=np.int64)
    top_p = np.empty((len(probs), k), dtype=probs.dtype)
    for i in range(k):
        best = work.argmax(axis=1)
        top[:, i] = best
        top_p[:, i] = work[rows, best]
        work[rows, best] = -np.inf
    return top, top_p


class OnnxScorer:
    """The embedded ONNX model, with its vocabularies, labels and templates."""

    registry_entry: dict
    """The model registry's entry for the file (set by ``models.registry.load_scorer``)."""

    def __init__(self, path: Path | str, top_k: int = 3, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("coachflow.feature_spec") != FEATURE_SPEC:
            raise ValueError(
                f"{path} was trained with features {meta.get('coachflow.feature_spec')!r}, "
                f"this code computes {FEATURE_SPEC!r}"
            )
        self.version = meta["coachflow.version"]
        self.labels = json.loads(meta["coachflow.labels"])
        self.templates = TemplateBook.from_json(json.loads(meta["coachflow.templates"]))
        self.vectorizer = Vectorizer(
            json.loads(meta["coachflow.action_vocab"]),
            json.loads(meta["coachflow.risk_vocab"]),
            self.templates.graph,
            json.loads(meta["coachflow.lexicon"]),
        )
        self.top_k = top_k
        self.risk_threshold = float(meta.get("coachflow.risk_threshold", "0.5"))

    #: Session calls take at most this many points, grouped by input length:
    #: rows are padded to the longest in a call, and the gathered rows of a
    #: bigger call fall out of the CPU caches.
    CHUNK = 64

    def run(self, batch: Sequence[Features]) -> tuple[np.ndarray, np.ndarray]:
        """Action probabilities [N, C] and risk [N] for a batch.

        Points are grouped by input length into session calls of ``CHUNK``,
        so little of each call is padding.
        """
        action, risk = self.vectorizer.rows(batch)
        if len(batch) <= self.CHUNK:
            return tuple(self.session.run(None, tensors(action, risk)))
        order = sorted(range(len(batch)), key=lambda i: len(action[i]))
        probs = np.empty((len(batch), len(self.labels)), dtype=np.float32)
        risks = np.empty(len(batch), dtype=np.float32)
        for start in range(0, len(order), self.CHUNK):
            chunk = order[start : start + self.CHUNK]
            probs[chunk], risks[chunk] = self.session.run(
                None, tensors([action[i] for i in chunk], [risk[i] for i in chunk])
            )
        return probs, risks

    def score_batch(self, batch: Sequence[Features]) -> list[Scores]:
        if not batch:
            return []
        probs, risk = self.run(batch)
        top, top_p = top_k(probs, self.top_k)
        label = self.labels.__getitem__
        return [
            Scores(list(zip(map(label, js), ps)), r if f.trigger == "customer_turn" else None)  # noqa: B905 - k each
            for js, ps, r, f in zip(top.tolist(), top_p.tolist(), risk.tolist(), batch, strict=True)
        ]

    def render(self, action: str, features: Features) -> str | None:
        return self.templates.render(action, features.task, features.tasks, features.kb_item)
