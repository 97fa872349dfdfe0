"""Knowledge assist, as a second Bytewax dataflow beside the coaching job.

Read conversation events and customer context; parse them against the topic
contracts (masking personal data) and enforce the data-quality gates, as the
coaching job does; join each event with its customer's context; decide which
final customer turns seek knowledge; shed what the stage cannot answer in
time (a bounded queue, oldest first, and a circuit breaker on its own
latency); rank the knowledge base's passages for the rest (BM25 candidates,
a learned re-ranker, one model call per batch); pass the best through the
knowledge policy; publish a card citing the article version and offsets,
and one knowledge decision for every input.

    python -m bytewax.run flows.knowledge:flow          # embedded default: data/knowledge, out/knowledge
    COACH_BROKERS=127.0.0.1:9092 python -m bytewax.run flows.knowledge:flow

It is a separate job with its own process, consumer offsets and (by
default) a lower CPU priority, so the coaching job's suggestions never wait
for it. ``flow`` is built from the environment when first looked up;
``get_flow(ks, settings)`` builds one for given settings (tests, variants).
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from coachflow.config import Settings
from coachflow.connectors import read_inputs, write_outputs
from coachflow.knowledge import lower_priority, open_knowledge, topic_specs
from coachflow.knowledge_config import KnowledgeSettings
from coachflow.runtime import configure_logging, start_metrics
from coachflow.topics import ensure_topics
from models.heap import settle_heap
from operators.cards import guard_cards
from operators.join import join_context
from operators.knowledge import passthrough, retrieve, track_asks
from operators.parse import parse_records
from operators.publish import serialize
from operators.quality import Gate, load_suites, quality_gate
from operators.shedding import LoadShedder
from schemas import Feedback


def get_flow(ks: KnowledgeSettings | None = None, settings: Settings | None = None) -> Dataflow:
    """The knowledge dataflow (default: both settings from the environment)."""
    ks = ks or KnowledgeSettings()
    settings = ks.job_settings(settings)
    configure_logging(settings.log_level)
    lower_priority(ks.nice)
    masking = settings.policy_store()  # the coaching policy's PII rule masks input text, as in the coaching job
    suites = load_suites(settings.quality_suites)
    if settings.kafka_mode and settings.create_topics and ks.create_topics:
        ensure_topics(settings, specs=topic_specs(ks, settings))
    resources = open_knowledge(ks, settings, [suite.label for suite in suites.values()])
    metrics = start_metrics(settings)
    shedder: LoadShedder = LoadShedder(ks.shed_config(), arrived_s=lambda ask: ask.arrived_s)

    flow = Dataflow("knowledge")
    raw = read_inputs(flow, settings, metrics, streams={settings.topic_events: "events",
                                                         settings.topic_context: "context"})
    parsed = parse_records("parse", raw, settings.parse_limits(), lambda: masking.current().redactor)
    # UI feedback only comes in the embedded mode's mixed file: recorded, like context.
    split = op.branch("split_feedback", parsed.oks, lambda envelope: isinstance(envelope.record, Feedback))
    feedback, records, refused = split.trues, split.falses, [parsed.errs]
    if settings.quality_gate:
        gated = quality_gate("quality_gate", records, Gate(suites), settings.max_payload_bytes)
        records, refused = gated.oks, [*refused, gated.errs]
    joined = join_context("join_context", records, settings.join_config())
    asks = track_asks("asks", joined.events, ks.knowledge_config(settings.session_gap_s))
    retrieved = retrieve("retrieve", asks, resources.store.retriever, shedder, ks.top_k)
    recorded = op.map("recorded", op.merge("not_events", joined.contexts, feedback), passthrough)
    decided = guard_cards(
        "guard_cards", op.merge("to_decide", retrieved, recorded), resources.policies, settings.session_gap_s,
        run_id=resources.lineage.run_id, ranker_version=resources.reranker.version,
    )
    published = op.merge("published", decided, joined.errs, *refused)
    if metrics is not None:
        op.inspect("metrics", published, metrics.observe)
    write_outputs(op.map("serialize", published, serialize), settings, outputs=ks.outputs())
    return flow


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.knowledge:flow` looks up `flow`: build it then.
    if name == "flow":
        flow = get_flow()
        settle_heap()
        return flow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
