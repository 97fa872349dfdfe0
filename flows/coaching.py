"""Real-time agent coaching, as one Bytewax dataflow.

Read conversation turns and customer context; parse them against the topic
contracts (masking personal data); enforce the data-quality gates; join each
turn with its customer's latest context; keep windowed state per
conversation; score each prediction point with the model; pass the candidates
through the guardrails; publish suggestions, alerts, decisions, dead letters
and conversation summaries; emit OpenLineage for the run.

    python -m bytewax.run flows.coaching:flow          # embedded default, no broker
    COACH_BROKERS=127.0.0.1:9092 python -m bytewax.run flows.coaching:flow

``flow`` is built from the ``COACH_*`` environment when first looked up;
``get_flow(settings)`` builds one for given settings (tests, variants).
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from coachflow.config import Settings
from coachflow.connectors import read_inputs, write_outputs
from coachflow.runtime import banner, configure_logging, quality_monitor, start_lineage
from coachflow.topics import ensure_topics
from models.registry import load_scorer
from operators.conversation import track_conversations
from operators.guardrails import apply_guardrails
from operators.join import join_context
from operators.parse import parse_records
from operators.publish import serialize, show
from operators.quality import Gate, load_suites, quality_gate
from operators.scoring import score
from schemas import Suggestion


def get_flow(settings: Settings | None = None) -> Dataflow:
    """The coaching dataflow for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    scorer = load_scorer(settings.model, threads=settings.onnx_threads)  # once per process
    policies = settings.policy_store()
    suites = load_suites(settings.quality_suites)
    if settings.kafka_mode and settings.create_topics:
        ensure_topics(settings)
    lineage = start_lineage(settings, scorer, policies.current(), suites)
    monitor = quality_monitor(settings, lineage)
    if settings.should_print:
        banner(settings, scorer, policies.current(), lineage)

    flow = Dataflow("coaching")
    raw = read_inputs(flow, settings)
    parsed = parse_records("parse", raw, settings.parse_limits(), lambda: policies.current().redactor)
    records, refused = parsed.oks, [parsed.errs]
    if settings.quality_gate:
        gated = quality_gate("quality_gate", records, Gate(suites), settings.max_payload_bytes,
                             monitor.add if monitor is not None else None)
        records, refused = gated.oks, [*refused, gated.errs]
    joined = join_context("join_context", records, settings.join_config())
    conversations = track_conversations("conversation", joined.events, settings.conversation_config())
    scored = score("score", conversations.events, scorer)
    decided = apply_guardrails(
        "guardrails", op.merge("to_decide", scored, joined.contexts), policies, scorer.templates,
        settings.session_gap_s, run_id=lineage.run_id,
    )
    if settings.should_print:
        op.inspect("show", decided, lambda _step, item: isinstance(item, Suggestion) and show(item))
    published = op.merge("published", decided, conversations.outputs, joined.errs, *refused)
    write_outputs(op.map("serialize", published, serialize), settings)
    return flow


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.coaching:flow` looks up `flow`: build it
    # then, so importing this module for `get_flow` builds nothing.
    if name == "flow":
        return get_flow()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
