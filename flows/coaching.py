"""Real-time agent coaching, as one Bytewax dataflow.

Read conversation turns, customer context and UI feedback; parse them against
the topic contracts (masking personal data); enforce the data-quality gates;
join each turn with its customer's latest context; keep windowed state per
conversation; score each prediction point with the model; pass the candidates
through the guardrails; judge acceptance of shown suggestions; publish
suggestions, alerts, decisions, acceptance, dead letters and conversation
summaries. Every step is an error boundary: a record it fails on becomes a
dead letter (``internal_error``) and the stream goes on.

    python -m bytewax.run flows.coaching:flow          # embedded default, no broker
    COACH_BROKERS=127.0.0.1:9092 python -m bytewax.run flows.coaching:flow

``get_flow(settings, job)`` only wires steps around an opened
``coachflow.runtime.JobResources`` (the model, policies, lineage, metrics ...);
``flow``, looked up by ``bytewax.run``, opens one for the ``COACH_*``
environment and closes it when the process ends.
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from coachflow.config import Settings
from coachflow.connectors import read_inputs, write_outputs
from coachflow.runtime import JobResources
from models.heap import settle_heap
from operators.acceptance import is_feedback, track_acceptance
from operators.conversation import track_conversations
from operators.envelope import Envelope
from operators.guardrails import apply_guardrails
from operators.join import join_context
from operators.parse import parse_records
from operators.publish import accounts_for_input, serialize_batch, show
from operators.quality import quality_gate
from operators.scoring import score
from schemas import Feedback, Suggestion


def get_flow(settings: Settings, job: JobResources) -> Dataflow:
    """The coaching dataflow for ``settings``, around the opened ``job``."""
    flow = Dataflow("coaching")
    raw = read_inputs(flow, settings, job.metrics)
    parsed = parse_records(
        "parse", raw, settings.parse_limits(), lambda: job.redactor, settings.boundary("parse")
    )
    # UI feedback (coaching.feedback) goes straight to the acceptance step.
    split = op.branch("split_feedback", parsed.oks, lambda envelope: isinstance(envelope.record, Feedback))
    feedback, records, refused = split.trues, split.falses, [parsed.errs]
    if settings.quality_gate:
        gated = quality_gate(
            "quality_gate",
            records,
            job.gate,
            settings.max_payload_bytes,
            job.monitor.add if job.monitor is not None else None,
            settings.boundary("quality_gate"),
        )
        records, refused = gated.oks, [*refused, gated.errs]
    joined = join_context(
        "join_context", records, settings.join_config(), boundary=settings.boundary("join_context")
    )
    conversations = track_conversations(
        "conversation",
        joined.events,
        settings.conversation_config(),
        boundary=settings.boundary("conversation"),
    )
    scored = score("score", conversations.events, job.scorer, job.arms, settings.suggest_untemplated,
                   settings.boundary("score"))
    guarded = apply_guardrails(
        "guardrails", op.merge("to_decide", scored.oks, joined.contexts), job.policies, job.scorer.templates,
        settings.guard_config(job.lineage.run_id), arms=job.arms, boundary=settings.boundary("guardrails"),
    )
    # The guardrails pass each input envelope through just before its decision: the
    # acceptance step reads that one stream, so it sees a conversation's turns and
    # suggestions in order; the published records are the rest of it.
    decided = op.filter("decided", guarded, lambda item: not isinstance(item, Envelope))
    judged = track_acceptance(
        "acceptance", op.merge("to_judge", feedback, guarded), settings.acceptance_config(),
        boundary=settings.boundary("acceptance", owns=is_feedback),
    )
    if settings.should_print:
        op.inspect("show", decided, lambda _step, item: show(item) if isinstance(item, Suggestion) else None)
    published = op.merge(
        "published", decided, judged, conversations.outputs, joined.errs, scored.errs, *refused
    )
    if job.metrics is not None:
        op.inspect("metrics", published, job.metrics.observe)
    serialized = op.flat_map_batch(
        "serialize", published, serialize_batch(settings.boundary("serialize", owns=accounts_for_input))
    )
    write_outputs(serialized, settings)
    return flow


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.coaching:flow` looks up `flow`: the job's
    # resources open then, so importing this module opens nothing.
    if name == "flow":
        settings = Settings()
        job = JobResources(settings).open()
        job.close_at_exit()
        flow = get_flow(settings, job)
        settle_heap()  # a job process: what it loaded stays for its whole run
        return flow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
