"""Real-time agent coaching, as one Bytewax dataflow.

Read conversation turns, customer context and UI feedback; parse them against the topic
contracts (masking personal data); enforce the data-quality gates; join each
turn with its customer's latest context; keep windowed state per
conversation; score each prediction point with the model; pass the candidates
through the guardrails (per experiment arm, if a canary runs); judge
acceptance of shown suggestions by click and inferred from the agent's next
turn; publish suggestions, alerts, decisions, acceptance, dead letters and
conversation summaries; emit OpenLineage for the run.

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
from coachflow.runtime import (
    banner,
    configure_logging,
    quality_monitor,
    start_lineage,
    start_metrics,
)
from coachflow.security import check_job_access
from coachflow.topics import ensure_topics
from models.heap import settle_heap
from models.registry import load_scorer
from operators.acceptance import track_acceptance
from operators.conversation import track_conversations
from operators.envelope import Envelope
from operators.experiment import Arms
from operators.guardrails import apply_guardrails
from operators.join import join_context
from operators.parse import parse_records
from operators.publish import serialize, show
from operators.quality import Gate, load_suites, quality_gate
from operators.scoring import score
from schemas import Feedback, Suggestion


def get_flow(settings: Settings | None = None) -> Dataflow:
    """The coaching dataflow for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    if settings.kafka_mode:
        check_job_access(settings)  # credentials or rights Kafka refuses stop the job here, before it loads
    scorer = load_scorer(settings.model, threads=settings.onnx_threads)  # once per process
    policies = settings.policy_store()
    suites = load_suites(settings.quality_suites)
    if settings.kafka_mode and settings.create_topics:
        ensure_topics(settings)
    lineage = start_lineage(settings, scorer, policies.current(), suites)
    monitor = quality_monitor(settings, lineage)
    metrics = start_metrics(settings, experiment_name(settings))  # Prometheus /metrics, once per process
    if settings.should_print:
        banner(settings, scorer, policies.current(), lineage)

    arms = experiment_arms(settings, scorer, policies)

    flow = Dataflow("coaching")
    raw = read_inputs(flow, settings, metrics)
    parsed = parse_records("parse", raw, settings.parse_limits(), lambda: policies.current().redactor)
    # UI feedback (coaching.feedback) goes straight to the acceptance step.
    split = op.branch("split_feedback", parsed.oks, lambda envelope: isinstance(envelope.record, Feedback))
    feedback, records, refused = split.trues, split.falses, [parsed.errs]
    if settings.quality_gate:
        gated = quality_gate("quality_gate", records, Gate(suites), settings.max_payload_bytes,
                             monitor.add if monitor is not None else None)
        records, refused = gated.oks, [*refused, gated.errs]
    joined = join_context("join_context", records, settings.join_config())
    conversations = track_conversations("conversation", joined.events, settings.conversation_config())
    scored = score("score", conversations.events, scorer, arms, settings.suggest_untemplated)
    guarded = apply_guardrails(
        "guardrails", op.merge("to_decide", scored, joined.contexts), policies, scorer.templates,
        settings.session_gap_s, run_id=lineage.run_id, arms=arms, passthrough=True,
        untemplated=settings.suggest_untemplated,
    )
    # The guardrails pass each input envelope through just before its decision: the
    # acceptance step reads that one stream, so it sees a conversation's turns and
    # suggestions in order; the published records are the rest of it.
    decided = op.filter("decided", guarded, lambda item: not isinstance(item, Envelope))
    judged = track_acceptance(
        "acceptance", op.merge("to_judge", feedback, guarded), settings.acceptance_config()
    )
    if settings.should_print:
        op.inspect("show", decided, lambda _step, item: isinstance(item, Suggestion) and show(item))
    published = op.merge("published", decided, judged, conversations.outputs, joined.errs, *refused)
    if metrics is not None:
        op.inspect("metrics", published, metrics.observe)
    write_outputs(op.map("serialize", published, serialize), settings)
    return flow


def experiment_name(settings: Settings) -> tuple[str, float] | None:
    experiment = settings.experiment
    return None if experiment is None else (experiment.name, experiment.share)


def experiment_arms(settings: Settings, scorer, policies) -> Arms | None:
    """The experiment's arms (its candidate model and policy loaded once per process), or None."""
    experiment = settings.experiment
    if experiment is None:
        return None
    candidate_scorer = (
        load_scorer(experiment.model, threads=settings.onnx_threads) if experiment.model is not None else None
    )
    candidate_policies = (
        settings.model_copy(update={"policy": experiment.policy, "policy_topic": None}).policy_store()
        if experiment.policy is not None else None
    )
    return Arms(
        control_scorer=scorer, control_policies=policies,
        candidate_scorer=candidate_scorer, candidate_policies=candidate_policies,
        name=experiment.name, share=experiment.share,
    )


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.coaching:flow` looks up `flow`: build it
    # then, so importing this module for `get_flow` builds nothing.
    if name == "flow":
        flow = get_flow()
        settle_heap()  # a job process: what it loaded stays for its whole run
        return flow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
