"""The knowledge job's own configuration, read once from ``COACH_KNOWLEDGE_*`` variables.

What the knowledge job shares with the coaching job (Kafka brokers and
client settings, the input topics, parse limits, the context join, lineage
transport, metrics host) comes from ``coachflow.config.Settings`` (``COACH_*``);
``KnowledgeSettings.job_settings`` gives the knowledge job its copy of them,
with its own input file, output directory, lineage job name and metrics port.
``docs/knowledge.md`` lists every variable; a test keeps that table in step.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from coachflow.config import ROOT, Settings
from coachflow.config import reference_table as settings_table
from operators.knowledge import KnowledgeConfig
from operators.shedding import ShedConfig
from schemas.topics import KNOWLEDGE_OUTPUTS, OUTPUT_KIND, topic

SAMPLE_DIR = ROOT / "data" / "knowledge"
SAMPLE_ARTICLES = SAMPLE_DIR / "articles.jsonl"
SAMPLE_CONVERSATIONS = SAMPLE_DIR / "conversations.jsonl"
DEFAULT_RANKER = ROOT / "models" / "knowledge" / "ranker.onnx"
DEFAULT_KNOWLEDGE_POLICY = ROOT / "policies" / "knowledge.yaml"
#: The knowledge job's Prometheus port in Kafka mode (the coaching job's is 9464).
DEFAULT_METRICS_PORT = 9474


def _topic(kind: str):
    spec = topic(kind)
    return Field(default=spec.default, description=spec.description)


class KnowledgeSettings(BaseSettings):
    """The environment variable is ``COACH_KNOWLEDGE_`` + the field name in capitals."""

    model_config = SettingsConfigDict(env_prefix="COACH_KNOWLEDGE_", frozen=True, extra="ignore")

    # Embedded mode
    input: Path = Field(
        default=SAMPLE_CONVERSATIONS,
        description="Embedded mode: the JSONL input (conversation events, context).",
    )
    output_dir: Path = Field(
        default=Path("out/knowledge"), description="Embedded mode: where its JSONL outputs go."
    )

    # The knowledge base
    articles: Path = Field(
        default=SAMPLE_ARTICLES,
        description=(
            "Articles to index at start: article JSONL, a Markdown folder, doc2dial documents or ABCD"
            " guidelines."
        ),
    )
    index: Path | None = Field(
        default=None, description="A built index directory (coach knowledge index); wins over ARTICLES."
    )
    articles_topic: str | None = Field(default=None, description=topic("articles").description)
    reload_s: float = Field(
        default=5.0,
        gt=0,
        description="How often the index, articles file or articles topic are checked for a new version.",
    )
    max_words: int = Field(default=100, ge=10, le=1000, description="Passage length limit when indexing.")
    ranker: Path = Field(
        default=DEFAULT_RANKER, description="The re-ranker (checked against models/registry.json)."
    )
    policy: Path = Field(
        default=DEFAULT_KNOWLEDGE_POLICY,
        description="The knowledge cards' guardrail policy (re-read when it changes).",
    )
    policy_topic: str | None = Field(default=None, description=topic("knowledge_policies").description)

    # Topics (defaults and meanings from the catalog, schemas.topics)
    topic_cards: str = _topic("knowledge")
    topic_decisions: str = _topic("knowledge_decisions")
    topic_dlq: str = _topic("knowledge_dlq")
    topic_feedback: str = _topic("knowledge_feedback")

    # Asks
    history_turns: int = Field(
        default=16, ge=1, le=64, description="Final turns kept per conversation for the query."
    )
    turn_chars: int = Field(
        default=1000, ge=50, le=16_000, description="Each kept turn is cut to this many characters."
    )
    min_words: int = Field(
        default=4, ge=1, description="A statement (no question) seeks knowledge from this many content words."
    )
    top_k: int = Field(default=10, ge=1, le=50, description="Passages ranked per ask.")

    # Shedding
    shed_queue_max: int = Field(
        default=256, ge=1, description="Asks retrieved per batch at most; the oldest beyond are shed."
    )
    shed_max_age_s: float = Field(
        default=5.0,
        gt=0,
        description=(
            "An ask that would be older than this when answered (from its turn's arrival) is shed as stale."
        ),
    )
    shed_breaker_ms: float = Field(
        default=50.0,
        gt=0,
        description="The circuit breaker opens when recent retrieval latency exceeds this.",
    )
    shed_percentile: float = Field(
        default=95.0, gt=0, le=100, description="Which percentile of recent retrievals the breaker watches."
    )
    shed_window: int = Field(default=50, ge=1, description="Retrievals the breaker looks at.")
    shed_cooldown_s: float = Field(
        default=10.0, gt=0, description="How long the breaker stays open before a probe."
    )

    # The process
    nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Lower the job's CPU priority by this much at start, so the coaching job goes first.",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65_535,
        description=(
            f"Prometheus /metrics port; unset: {DEFAULT_METRICS_PORT} in Kafka mode, off in embedded mode;"
            " 0: off."
        ),
    )
    lineage_job: str = Field(default="knowledge", description="The job's OpenLineage name.")
    create_topics: bool = Field(default=True, description="Create its missing topics at start (Kafka mode).")

    def job_settings(self, base: Settings | None = None) -> Settings:
        """The coaching ``Settings`` as this job uses them: its input, outputs, lineage name, metrics port."""
        base = base or Settings()
        port = self.metrics_port
        if port is None:
            port = DEFAULT_METRICS_PORT if base.kafka_mode else 0
        return base.model_copy(update={
            "input": self.input, "output_dir": self.output_dir, "lineage_job": self.lineage_job,
            "metrics_port": port, "policy_topic": None,
        })

    def outputs(self) -> dict[str, str]:
        """Output kind (the sinks' kinds: ``dlq`` for dead letters, as in the coaching job) -> topic name."""
        return {OUTPUT_KIND[spec.records[0]]: getattr(self, spec.setting) for spec in KNOWLEDGE_OUTPUTS}

    def knowledge_config(self, idle_s: float) -> KnowledgeConfig:
        return KnowledgeConfig(history_turns=self.history_turns, turn_chars=self.turn_chars,
                               min_words=self.min_words, idle_s=idle_s, top_k=self.top_k)

    def shed_config(self) -> ShedConfig:
        return ShedConfig(queue_max=self.shed_queue_max, max_age_s=self.shed_max_age_s,
                          breaker_ms=self.shed_breaker_ms, percentile=self.shed_percentile,
                          window=self.shed_window, cooldown_s=self.shed_cooldown_s)


def reference_table() -> str:
    """docs/knowledge.md's configuration reference: one row per ``COACH_KNOWLEDGE_*`` variable."""
    return settings_table(KnowledgeSettings)
