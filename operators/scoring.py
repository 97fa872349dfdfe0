"""Score prediction points in batches and render the candidates' replies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import bytewax.operators as op
from bytewax.dataflow import Stream, operator

from operators.boundary import Boundary, split_dead_letters
from operators.envelope import Envelope, now_ns
from operators.features import Features
from schemas import DeadLetter


class Scores(NamedTuple):
    """A prediction point's ranked actions and, if the model has one, escalation risk.

    A named tuple: one is built per prediction point, and a named tuple is
    cheaper to build than a frozen dataclass.
    """

    candidates: list[tuple[str, float]]
    """(action, confidence), best first."""
    risk: float | None = None


class Templates(Protocol):
    """What the guardrails need of a model's approved templates (``models.templates.TemplateBook``)."""

    def approved(
        self, action: str, text: str, task: str | None, tasks: tuple[str, ...], max_slot_chars: int, /
    ) -> bool:
        """Whether ``text`` is ``action``'s approved template with plain slot values."""
        ...

    def has(self, action: str, /) -> bool:
        """Whether ``action`` has a template."""
        ...


class Scorer(Protocol):
    """What the dataflow needs of a model: a version, batched scoring, rendering, its templates."""

    version: str
    registry_entry: dict
    """The model registry's entry for the loaded file (set by ``models.registry.load_scorer``)."""
    @property
    def templates(self) -> Templates:
        """The approved templates the guardrails check candidates against."""
        ...

    def score_batch(self, batch: Sequence[Features]) -> list[Scores]:
        """Ranked actions and risk per prediction point, one model call for the batch."""
        ...

    def render(self, action: str, features: Features) -> str | None:
        """The approved reply for ``action`` in this conversation, or None."""
        ...


class TemplateScorer:
    """Adapts the baseline (``predict_batch`` and a ``TemplateBook``) to ``Scorer``."""

    registry_entry: dict
    """The model registry's entry for the file (set by ``models.registry.load_scorer``)."""

    def __init__(self, model) -> None:
        self.model = model
        self.version = model.version
        self.templates = model.templates

    def score_batch(self, batch: Sequence[Features]) -> list[Scores]:
        return [Scores(candidates) for candidates in self.model.predict_batch(batch)]

    def render(self, action: str, features: Features) -> str | None:
        return self.templates.render(action, features.task, features.tasks, features.kb_item)


def placeholder(action: str) -> str:
    """The text of a candidate with no template, when ``COACH_SUGGEST_UNTEMPLATED`` keeps it."""
    return f"[{action}]"


def score_envelopes(
    batch: list[Envelope], scorer: Scorer, clock: Callable[[], int] = now_ns, arms=None,
    untemplated: bool = False,
) -> list[Envelope]:
    """Score every prediction point of ``batch`` in one model call; pass the rest through.

    With ``arms`` (an ``operators.experiment.Arms``), every conversation event
    is stamped with its experiment arm, and each arm's points are scored by
    that arm's model (one call per arm). With ``untemplated`` (evaluation only),
    candidates without a template are kept with a ``placeholder`` text.
    """
    if arms is None:
        _score_points(batch, scorer, clock, untemplated)
        return batch
    by_arm: dict[str | None, list[Envelope]] = {}
    for envelope in batch:
        envelope.arm = arms.arm(getattr(envelope.record, "conversation_id", None))
        by_arm.setdefault(envelope.arm, []).append(envelope)
    for arm, envelopes in by_arm.items():
        _score_points(envelopes, arms.scorer(arm), clock, untemplated)
    return batch


def _score_points(batch: list[Envelope], scorer: Scorer, clock: Callable[[], int], untemplated: bool) -> None:
    points = [envelope for envelope in batch if envelope.features is not None]
    if points:
        features = [f for envelope in points if (f := envelope.features) is not None]
        scored = scorer.score_batch(features)
        done = clock()
        for envelope, point, scores in zip(points, features, scored, strict=True):
            candidates = scores.candidates
            envelope.risk = scores.risk
            envelope.risk_threshold = getattr(scorer, "risk_threshold", None)
            texts = {}
            for action, _ in candidates:
                text = scorer.render(action, point)
                if text is None and untemplated:
                    text = placeholder(action)
                if text is not None:
                    texts[action] = text
            envelope.candidates = [c for c in candidates if c[0] in texts]
            envelope.texts = texts
            envelope.model_version = scorer.version
            envelope.scored_ns = done


@dataclass(frozen=True)
class ScoreOut:
    """Scored envelopes (``oks``) and the dead letters of records scoring failed on (``errs``)."""

    oks: Stream[Envelope]
    errs: Stream[DeadLetter]


@operator
def score(
    step_id: str, up: Stream[Envelope], scorer: Scorer, arms=None, untemplated: bool = False,
    boundary: Boundary | None = None,
) -> ScoreOut:
    """Rank next agent actions for each prediction point, a whole batch per model call.

    Envelopes that are not prediction points pass through untouched. When the
    batch's call raises, each of its records is scored alone, so that only the
    records it fails on become dead letters.

    :arg step_id: Unique ID.
    :arg up: Envelopes from the conversation step.
    :arg scorer: The model, built once per worker process.
    :arg arms: An experiment's ``Arms``: each conversation scored by its arm's model.
    :arg untemplated: Evaluation only: keep candidates without a template (placeholder text).
    :arg boundary: How a failure on one record becomes its dead letter (default: named after the step).
    :returns: ``ScoreOut(oks, errs)``: the envelopes, prediction points with ``candidates`` and ``texts``.
    """
    boundary = boundary or Boundary(step_id)

    def one(envelope: Envelope) -> list[Envelope]:
        return score_envelopes([envelope], scorer, arms=arms, untemplated=untemplated)

    def score_batch(batch: list[Envelope]) -> list[Envelope | DeadLetter]:
        try:
            scored: list[Envelope | DeadLetter] = list(
                score_envelopes(batch, scorer, arms=arms, untemplated=untemplated)
            )
        except Exception:  # noqa: BLE001 - find the records it fails on
            scored = []
            for envelope in batch:
                scored += boundary.guard(one, envelope)
            return scored
        boundary.passed()
        return scored

    oks, errs = split_dead_letters("split", op.flat_map_batch("score_batch", up, score_batch), Envelope)
    return ScoreOut(oks=oks, errs=errs)
