"""Serving the ONNX model: vectorise features, run one session, rank and render.

``Vectorizer`` turns ``Features`` into the model's sparse inputs with
``operators.features.action_inputs`` / ``risk_inputs`` and the vocabularies
stored in the model; training builds its matrices with the very same object.
``OnnxScorer`` holds one onnxruntime session per process (Bytewax workers in a
process share it) and scores a whole batch per call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import chain
from pathlib import Path

import numpy as np

from models.templates import TemplateBook
from operators.features import (
    WORD_PREFIXES,
    Features,
    FlowGraphs,
    Lexicon,
    Memo,
    TextPart,
    action_done_parts,
    action_name_parts,
    action_text_parts,
    risk_state_inputs,
    risk_text_inputs,
    text_keys,
    unique_tokens,
)
from operators.scoring import Scores

#: Bump when action_inputs / risk_inputs change meaning; the model records it.
FEATURE_SPEC = "coachflow-features-2"
#: The registry's ``kind`` of models served by ``OnnxScorer``.
KIND = "onnx-mlp-ensemble"


class Vectorizer:
    """Named model inputs -> (index, value) rows, for training and serving alike.

    Action inputs are all valued 1.0 (``action_input_parts`` promises it), so
    an action row is its indices; risk inputs carry values. Name tuples are
    cached objects, so their indices are remembered by identity. Text parts
    are mapped without spelling out their names: a text's words become word
    ids once, and each prefix (``said``, ``recent_w`` ...) maps word ids to
    its inputs' indices through a table.
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
        self._action_index = {name: i for i, name in enumerate(self.action_vocab)}
        self._risk_index = {name: i for i, name in enumerate(self.risk_vocab)}
        self._action_words = _by_prefix(self.action_vocab)
        self._risk_words = _by_prefix(self.risk_vocab)
        # Every word a word prefix of either head names gets an id; a table
        # per head and prefix holds each word id's input index, or -1.
        self._word_ids: dict[str, int] = {}
        for words in (self._action_words, self._risk_words):
            for prefix in WORD_PREFIXES:
                for word in words.get(prefix, ()):
                    self._word_ids.setdefault(word, len(self._word_ids))
        self._action_tables = _tables(self._action_words, self._word_ids)
        self._risk_tables = _tables(self._risk_words, self._word_ids)
        size = self.MEMO_SIZE
        self._text_words = Memo(size)  # text -> its words' ids
        self._parts = Memo(size)  # id(name tuple) -> (the tuple, its indices)
        self._action_texts = Memo(size)  # (prefix, text) -> indices
        self._risk_texts = Memo(size)
        # Per conversation: its latest point's turns and the inputs they gave,
        # needed only until its next point (a few kB each, so fewer kept).
        self._history_action = Memo(self.CONVERSATIONS)
        self._history_risk = Memo(self.CONVERSATIONS)
        self._done = Memo(self.CONVERSATIONS)  # conversation -> (task, actions, their done indices)
        self.flows = FlowGraphs(graph)
        self.lexicon = Lexicon(lexicon)

    def _map_text(self, prefix: str, text: str, words: dict[str, dict[str, int]], tables: dict) -> tuple[int, ...]:
        """Indices of one text's inputs under a prefix, each once."""
        table = tables.get(prefix)
        if table is None:  # word pairs, or a prefix the model does not know
            get = words.get(prefix, {}).get
            return tuple(dict.fromkeys([j for j in map(get, text_keys(prefix, text)) if j is not None]))
        memo = self._text_words
        ids = memo.get(text) or memo.recall(text)
        if ids is None:
            get = self._word_ids.get
            ids = memo.keep(text, tuple([i for i in map(get, unique_tokens(text)) if i is not None]))
        return tuple([j for j in map(table.__getitem__, ids) if j >= 0])

    def _text_indices(self, prefix: str, text: str, words, tables, memo: dict) -> tuple[int, ...]:
        """``_map_text``, remembered by prefix and text."""
        key = (prefix, text)
        hit = memo.get(key)
        if hit is None:
            hit = memo.recall(key)
            if hit is None:
                hit = memo.keep(key, self._map_text(prefix, text, words, tables))
        return hit

    def _one_text(self, prefix: str, text: str, words, tables, memo: dict) -> tuple[int, ...]:
        """Indices of one text's inputs under a prefix.

        The customer's latest turn (``_LATEST_TURN`` prefixes) is needed while
        no turn follows, which the caller remembers; earlier turns come back
        at every later point, so their indices are remembered here.
        """
        if prefix in _LATEST_TURN:
            return self._map_text(prefix, text, words, tables)
        return self._text_indices(prefix, text, words, tables, memo)

    def _texts_indices(self, part: TextPart, words, tables, memo: dict) -> Iterable[int]:
        """Indices of a text part's inputs, each once."""
        prefix, texts = part
        if len(texts) == 1:
            return self._one_text(prefix, texts[0], words, tables, memo)
        return set().union(*[self._one_text(prefix, text, words, tables, memo) for text in texts])

    def _name_indices(self, part: tuple[str, ...]) -> tuple[int, ...]:
        # Remembered by identity (checked, since an id can be reused once a
        # tuple leaves its cache).
        hit = self._parts.get(id(part))
        if hit is not None and hit[0] is part:
            return hit[1]
        hit = self._parts.recall(id(part))
        if hit is not None and hit[0] is part:
            return hit[1]
        get = self._action_index.get
        indices = tuple([j for j in map(get, part) if j is not None])
        self._parts.keep(id(part), (part, indices))
        return indices

    def action_row(self, features: Features) -> list[int]:
        """Indices of the point's action inputs, each once (in no particular order).

        The action head sums its inputs' integer embedding rows, so their
        order does not change a score. ``action_input_parts`` promises that
        no input is in two parts, so the parts' indices are concatenated.
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
            words, memo = self._action_words, self._action_texts
            text_indices = []
            for part in texts:
                text_indices += self._texts_indices(part, words, self._action_tables, memo)
            self._history_action.keep(features.conversation_id, (key, (last, text_indices)))
        row: list[int] = []
        remembered = self._parts.get
        for part in action_name_parts(features, self.flows, last):
            hit = remembered(id(part))
            row += hit[1] if hit is not None and hit[0] is part else self._name_indices(part)
        row += self._done_indices(features)
        row += text_indices
        return row

    def _done_indices(self, features: Features) -> list[int]:
        """Indices of ``action_done_parts``, extended per conversation as its actions grow."""
        actions, task = features.actions_so_far, features.task
        seen = self._done.get(features.conversation_id)
        if seen is not None and seen[0] == task and actions[: len(seen[1])] == seen[1]:
            if len(actions) == len(seen[1]):
                return seen[2]
            new = action_done_parts(actions[len(seen[1]):], task)
            indices = seen[2] + list(chain.from_iterable(map(self._name_indices, new)))
        else:
            indices = list(chain.from_iterable(map(self._name_indices, action_done_parts(actions, task))))
        self._done.keep(features.conversation_id, (task, actions, indices))
        return indices

    def risk_row(self, features: Features) -> tuple[list[int], list[float]]:
        """Indices and values of the point's risk inputs, each once.

        Inputs from the state come first, then those from the turns
        (remembered per conversation like the action inputs'); no name is in both.
        """
        get = self._risk_index.get
        key = (features.history, features.last_customer_text)
        seen = self._history_risk.get(features.conversation_id)
        if seen is not None and seen[0] == key:
            turn_indices, turn_values = seen[1]
        else:
            values, texts = risk_text_inputs(features, self.lexicon)
            words, memo = self._risk_words, self._risk_texts
            # Word inputs never share a name with valued ones: they follow the values.
            row = {j: v for j, v in zip(map(get, values), values.values(), strict=True) if j is not None and v}
            tables = self._risk_tables
            row.update(dict.fromkeys(chain.from_iterable([
                self._one_text(prefix, text, words, tables, memo) for prefix, texts in texts for text in texts
            ]), 1.0))
            turn_indices, turn_values = list(row), list(row.values())
            self._history_risk.keep(features.conversation_id, (key, (turn_indices, turn_values)))
        state = risk_state_inputs(features)
        indices = []
        values = []
        for j, v in zip(map(get, state), state.values(), strict=True):
            if j is not None and v:
                indices.append(j)
                values.append(v)
        return indices + turn_indices, values + turn_values

    def rows(self, batch: Sequence[Features]) -> tuple[list[list[int]], list[tuple[list[int], list[float]]]]:
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
            rows = [(i, [1.0] * len(i)) for i in (self.action_row(f) for f in batch)]
            width = len(self.action_vocab)
        else:
            rows = [self.risk_row(f) for f in batch]
            width = len(self.risk_vocab)
        indptr = np.cumsum([0] + [len(i) for i, _ in rows])
        indices = np.fromiter(chain.from_iterable(i for i, _ in rows), dtype=np.int64, count=indptr[-1])
        values = np.fromiter(chain.from_iterable(v for _, v in rows), dtype=np.float32, count=indptr[-1])
        return sparse.csr_matrix((values, indices, indptr), shape=(len(rows), width))


#: Text parts of only the customer's latest turn (see ``Vectorizer._one_text``).
_LATEST_TURN = frozenset(("w", "bigram"))


def _tables(words: dict[str, dict[str, int]], word_ids: dict[str, int]) -> dict[str, list[int]]:
    """Per word prefix, each word id's input index (-1 where the prefix does not name the word)."""
    tables = {}
    for prefix in WORD_PREFIXES:
        table = [-1] * len(word_ids)
        for word, index in words.get(prefix, {}).items():
            table[word_ids[word]] = index
        tables[prefix] = table
    return tables


def _by_prefix(vocab: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{"w": {"refund": 17, ...}, ...}`` for every ``prefix=key`` name."""
    out: dict[str, dict[str, int]] = {}
    for i, name in enumerate(vocab):
        prefix, sep, key = name.partition("=")
        if sep:
            out.setdefault(prefix, {})[key] = i
    return out


_EMPTY_ROW: tuple[list[int], list[float]] = ([], [])


def tensors(action: list[list[int]], risk: list[tuple[list[int], list[float]]]) -> dict[str, np.ndarray]:
    """The model's four input tensors for these rows."""
    action_idx, action_mask = _pad(action, None)
    risk_idx, risk_val = _pad([i for i, _ in risk], [v for _, v in risk])
    return {"action_idx": action_idx, "action_mask": action_mask, "risk_idx": risk_idx, "risk_val": risk_val}


def _pad(indices: list[list[int]], values: list[list[float]] | None) -> tuple[np.ndarray, np.ndarray]:
    """[N, K] index and value arrays; ``values=None`` gives a uint8 mask of ones instead."""
    lengths = np.fromiter(map(len, indices), dtype=np.int64, count=len(indices))
    width = max(1, int(lengths.max(initial=0)))
    total = int(lengths.sum())
    filled = np.arange(width) < lengths[:, None]  # row-major, as the rows are chained
    idx = np.zeros((len(indices), width), dtype=np.int64)
    idx[filled] = np.fromiter(chain.from_iterable(indices), dtype=np.int64, count=total)
    if values is None:
        return idx, filled.view(np.uint8)
    val = np.zeros((len(indices), width), dtype=np.float32)
    val[filled] = np.fromiter(chain.from_iterable(values), dtype=np.float32, count=total)
    return idx, val


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns of each row, best first (ties to the lower column), and their values.

    k passes of argmax: for the 3 of ~160 labels served, several times
    cheaper than argpartition and a sort per row.
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
    #: bigger call fall out of the CPU caches (64 measured ~10% cheaper than 128).
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
