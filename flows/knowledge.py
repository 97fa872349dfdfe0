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
for it. ``flow``, looked up by ``bytewax.run``, opens the resources for the
environment and closes them when the process ends;
``get_flow(ks, settings, job)`` only wires steps around an opened
``coachflow.knowledge.KnowledgeResources``.
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from coachflow.config import Settings
from coachflow.connectors import read_inputs, write_outputs
from coachflow.knowledge import KnowledgeResources
from coachflow.knowledge_config import KnowledgeSettings
from models.heap import settle_heap
from operators.cards import guard_cards
from operators.join import join_context
from operators.knowledge import AskBoundary, passthrough, retrieve, track_asks
from operators.parse import parse_records
from operators.publish import accounts_for_input, serialize_batch
from operators.quality import quality_gate
from schemas import Feedback


def get_flow(ks: KnowledgeSettings, settings: Settings, job: KnowledgeResources) -> Dataflow:
    """The knowledge dataflow for ``ks``, the job's ``settings`` (``ks.job_settings()``) and ``job``."""
    flow = Dataflow("knowledge")
    inputs = {name: kind for kind, name in settings.inputs().items() if kind in ("events", "context")}
    raw = read_inputs(flow, settings, job.metrics, streams=inputs)
    parsed = parse_records(
        "parse", raw, settings.parse_limits(), lambda: job.redactor, settings.boundary("parse")
    )
    # UI feedback only comes in the embedded mode's mixed file: recorded, like context.
    split = op.branch("split_feedback", parsed.oks, lambda envelope: isinstance(envelope.record, Feedback))
    feedback, records, refused = split.trues, split.falses, [parsed.errs]
    if settings.quality_gate:
        gated = quality_gate("quality_gate", records, job.gate, settings.max_payload_bytes, None,
                             settings.boundary("quality_gate"))
        records, refused = gated.oks, [*refused, gated.errs]
    joined = join_context(
        "join_context", records, settings.join_config(), boundary=settings.boundary("join_context")
    )
    asks = track_asks("asks", joined.events, ks.knowledge_config(settings.session_gap_s),
                      boundary=settings.boundary("asks"))
    retrieved = retrieve("retrieve", asks, job.store.retriever, job.shedder, ks.top_k,
                         boundary=_ask_boundary(settings, "retrieve"))
    recorded = op.map("recorded", op.merge("not_events", joined.contexts, feedback), passthrough)
    decided = guard_cards(
        "guard_cards", op.merge("to_decide", retrieved, recorded), job.policies, settings.session_gap_s,
        run_id=job.lineage.run_id, ranker_version=job.reranker.version,
        boundary=_ask_boundary(settings, "guard_cards"),
    )
    published = op.merge("published", decided, joined.errs, *refused)
    if job.metrics is not None:
        op.inspect("metrics", published, job.metrics.observe)
    serialized = op.flat_map_batch(
        "serialize", published, serialize_batch(settings.boundary("serialize", owns=accounts_for_input))
    )
    write_outputs(serialized, settings, outputs=ks.outputs())
    return flow


def _ask_boundary(settings: Settings, step: str) -> AskBoundary:
    base = settings.boundary(step)
    return AskBoundary(base.step, base.payload_limit, base.in_a_row)


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.knowledge:flow` looks up `flow`: the job's resources open then.
    if name == "flow":
        ks = KnowledgeSettings()
        settings = ks.job_settings()
        job = KnowledgeResources(ks, settings).open()
        job.close_at_exit()
        flow = get_flow(ks, settings, job)
        settle_heap()  # a job process: what it loaded stays for its whole run
        return flow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
