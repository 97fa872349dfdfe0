"""The job's configuration, read once from ``COACH_*`` environment variables.

``COACH_BROKERS`` set means Kafka mode; unset means the embedded default
(read ``COACH_INPUT``, write JSONL files into ``COACH_OUTPUT_DIR``). Every
setting and its default is listed in the configuration reference of
docs/operations.md, which ``scripts/update_config_reference.py`` regenerates
from this class and a test keeps in step with it.

Every Kafka client of the project (the job's source, sink, lag gauge, policy
follower and lineage transport, and the replay, console, report, bench and
admin tools) takes its librdkafka configuration from
``Settings.kafka_client``: the brokers, the client's own defaults, then the
properties of ``COACH_KAFKA_CONFIG_FILE`` and ``COACH_KAFKA_CONFIG`` and the
password of ``COACH_KAFKA_PASSWORD_FILE`` (or ``COACH_KAFKA_PASSWORD``).
See docs/security.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, create_model, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from coachflow.kafka_log import client_config
from coachflow.private import read_properties, read_secret
from lineage import LineageConfig
from operators.acceptance import AcceptanceConfig
from operators.boundary import Boundary
from operators.conversation import ConversationConfig
from operators.experiment import ExperimentConfig
from operators.guardrails import GuardConfig
from operators.join import JoinConfig
from operators.limits import JsonLimits
from operators.parse import ParseLimits
from operators.policy import DEFAULT_POLICY, PolicyStore
from operators.quality import SUITES_DIR
from schemas.topics import INPUTS, OUTPUTS, TOPICS, TopicSpec, topic

log = logging.getLogger("coachflow.config")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_INPUT = ROOT / "data" / "sample" / "conversations.jsonl"
DEFAULT_MODEL = ROOT / "models" / "coach" / "coach.onnx"
#: The Prometheus endpoint's port in Kafka mode when COACH_METRICS_PORT is unset.
DEFAULT_METRICS_PORT = 9464
#: librdkafka properties that hold secrets: masked wherever a client configuration is shown.
SECRET_PROPERTIES = frozenset({
    "sasl.password", "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config",
    "ssl.key.password", "ssl.key.pem", "ssl.keystore.password",
})
#: The variables that carry a Kafka client's properties and credentials (passed on to child jobs).
KAFKA_CLIENT_VARIABLES = ("COACH_KAFKA_CONFIG", "COACH_KAFKA_CONFIG_FILE", "COACH_KAFKA_PASSWORD",
                          "COACH_KAFKA_PASSWORD_FILE")
DAY_MS = 86_400_000


class KafkaClientConfig(dict[str, Any]):
    """A librdkafka configuration whose ``repr`` masks the values of secret properties."""

    def __repr__(self) -> str:
        shown = {key: "***" if key in SECRET_PROPERTIES else value for key, value in self.items()}
        return f"KafkaClientConfig({shown!r})"

    __str__ = __repr__


def kafka_client_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Kafka client variables set in ``environ`` (default: this process's), to pass on to a child job."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in KAFKA_CLIENT_VARIABLES if name in environ}


def _credentials_file(path: Path) -> Path:
    """``path``, checked to be a file; said at start when others than its owner may read it."""
    if not path.is_file():
        raise ValueError(f"{path} is not a readable file")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Still used (a Kubernetes secret volume is group-readable by default), but said.
        log.warning("%s holds Kafka credentials and others than its owner may read it (chmod 600 it)", path)
    return path


class _Base(BaseSettings):
    # hide_input_in_errors: a refused value (COACH_KAFKA_CONFIG may hold a password) never reaches a log.
    model_config = SettingsConfigDict(
        env_prefix="COACH_", frozen=True, extra="ignore", hide_input_in_errors=True
    )


def _topic_field(spec: TopicSpec) -> tuple[object, object]:
    if spec.optional:
        return (str | None, Field(default=None, description=spec.description))
    return (str, Field(default=spec.default, description=spec.description))


#: One setting per topic of the catalog (``schemas.topics``):
#: ``COACH_TOPIC_EVENTS`` ... ``COACH_POLICY_TOPIC``.
_Topics = create_model(  # type: ignore[call-overload]
    "_Topics", __base__=_Base, **{spec.setting: _topic_field(spec) for spec in TOPICS}
)


class Settings(_Topics):  # type: ignore[misc, valid-type]
    """All settings; the environment variable is ``COACH_`` + the field name in capitals.

    The topic settings come from the catalog (``schemas.topics``); ``topic(kind)`` reads one.
    """

    # Mode and I/O
    brokers: str | None = Field(
        default=None, description="Kafka bootstrap servers (host:port,...); set means Kafka mode."
    )
    input: Path = Field(default=SAMPLE_INPUT, description="Embedded mode: the JSONL input file.")
    input_batch_size: int = Field(
        default=500, ge=1, description="Embedded mode: lines read into one activation (at most)."
    )
    output_dir: Path = Field(default=Path("out"), description="Embedded mode: where JSONL outputs go.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Level of the job's own log lines (policy, quality, lineage) on stderr."
    )
    print_suggestions: bool | None = Field(
        default=None, description="Print a line per suggestion; default: on in embedded mode only."
    )

    # Topics (and the topic settings above)
    create_topics: bool = Field(default=True, description="Create missing topics at start.")
    topic_partitions: int = Field(default=4, ge=1, description="Partitions of topics it creates.")
    retention_decisions_days: float = Field(
        default=30,
        gt=0,
        description="Days the decisions topic keeps records: set when created "
        "(`coach topics create`: always).",
    )
    retention_dlq_days: float = Field(default=7, gt=0, description="The same for the dead-letter topic.")
    retention_feedback_days: float = Field(default=30, gt=0, description="The same for the feedback topic.")

    # Kafka client
    kafka_starting_offset: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where to start without recovery state."
    )
    kafka_tail: bool = Field(
        default=True, description="Keep waiting for new input; false stops at the end of each partition."
    )
    kafka_batch_size: int = Field(
        default=1000, ge=1, description="Max messages per poll per partition (and read ahead per partition)."
    )
    kafka_config: dict[str, str] = Field(
        default_factory=dict, repr=False,
        description="Extra librdkafka properties as JSON (security, tuning); over KAFKA_CONFIG_FILE's.",
    )
    kafka_config_file: Path | None = Field(
        default=None,
        description="A librdkafka properties file (key=value lines; may hold sasl.password), read at start.",
    )
    kafka_password: SecretStr | None = Field(
        default=None, description="The SASL password (sasl.password); KAFKA_PASSWORD_FILE is safer."
    )
    kafka_password_file: Path | None = Field(
        default=None, description="A file whose first line is the SASL password (sasl.password)."
    )
    input_key: Literal["conversation", "customer"] = Field(
        default="conversation",
        description="What the events and feedback topics are keyed by; "
        "customer: co-partitioned with the context topic.",
    )
    kafka_partitions: list[int] | None = Field(
        default=None,
        description="Read only these partitions of each input topic (JSON, e.g. [0,2]): "
        "one job per share, each "
        "with its own recovery directory. Needs INPUT_KEY=customer and input topics of one partition count.",
    )

    # Input limits
    max_payload_bytes: int = Field(default=65_536, ge=256, description="Bigger records are dead-lettered.")
    max_text_chars: int = Field(default=4_000, ge=1, le=16_000, description="Longer turns are dead-lettered.")
    max_json_depth: int = Field(
        default=32,
        ge=4,
        le=256,
        description="Records whose objects and arrays nest deeper are dead-lettered.",
    )
    max_json_keys: int = Field(
        default=1_024, ge=64, description="Records with more object keys in all are dead-lettered."
    )
    max_json_items: int = Field(
        default=4_096, ge=64, description="Records with more array items in all are dead-lettered."
    )
    max_json_string_chars: int = Field(
        default=32_768, ge=1_000,
        description="Records with a longer string (as written, escapes included) are dead-lettered.",
    )
    max_failures_in_a_row: int = Field(
        default=100, ge=1,
        description="A step failing on this many records in a row stops the job (a systemic failure); "
        "fewer: each is dead-lettered internal_error.",
    )

    # Join
    context_wait_ms: int = Field(default=2_000, ge=0, description="How long a turn waits for its context.")
    context_ttl_s: float = Field(
        default=3_600, gt=0, description="Unused customer context is released after this."
    )

    # Conversation window
    window_s: float = Field(default=60, gt=0, description="Sliding event-time window for talk figures.")
    recent_turns: int = Field(default=8, ge=1, description="Turns of history per prediction point.")
    allowed_lateness_s: float = Field(default=30, ge=0, description="Older events are dead-lettered as late.")
    session_gap_s: float = Field(default=900, gt=0, description="Idle conversations close after this.")
    tombstone_s: float = Field(
        default=600, ge=0, description="Ended conversations refuse stragglers this long."
    )
    silence_alert_s_voice: float = Field(
        default=20, gt=0, description="Voice: a customer waiting this long raises long_silence."
    )
    silence_alert_s_chat: float = Field(default=120, gt=0, description="Chat: the same, for chat.")
    complaint_alert_count: int = Field(
        default=2, ge=1, description="Complaints in a conversation that raise repeated_complaint."
    )
    alert_cooldown_s: float = Field(
        default=120, ge=0, description="Event-time seconds before an alert kind can fire again."
    )

    # Scoring and guardrails
    model: Path = Field(
        default=DEFAULT_MODEL, description="The model artifact (checked against models/registry.json)."
    )
    onnx_threads: int = Field(default=1, ge=1, le=16, description="onnxruntime threads per worker process.")
    policy: Path = Field(
        default=DEFAULT_POLICY, description="The guardrail policy file (re-read when it changes)."
    )
    policy_reload_s: float = Field(default=2.0, gt=0, description="How often the policy file is checked.")

    # Acceptance and experiments
    feedback_ttl_s: float = Field(
        default=1800, gt=0, description="A shown suggestion can be judged by feedback this long (wall clock)."
    )
    feedback_wait_s: float = Field(
        default=30,
        ge=0,
        description="Feedback on a suggestion not seen yet waits this long, then unknown_suggestion.",
    )
    accept_similarity: float = Field(
        default=0.8, ge=0.0, le=1.0,
        description="Inferred acceptance of an unlabelled agent reply: minimum similarity to the suggestion.",
    )
    accept_infer: Literal["all", "voice", "off"] = Field(
        default="all", description="Channels where acceptance is inferred from the agent's next turn."
    )
    suggest_untemplated: bool = Field(
        default=False,
        description="Evaluation only: show a candidate without an approved template as its bare label "
        "`[action]`, so the shown suggestion is the model's top-1 (with policies/evaluation.yaml).",
    )
    experiment: ExperimentConfig | None = Field(
        default=None,
        description='Canary as JSON: {"name", "share" (0-1 to the candidate arm), "model" and/or "policy"}.',
    )

    # Data quality
    quality_gate: bool = Field(
        default=True, description="Enforce the suites' critical expectations per record."
    )
    quality_monitor: bool = Field(
        default=True, description="Validate micro-batches with GX in a side process."
    )
    quality_suites: Path = Field(default=SUITES_DIR, description="The GX expectation suites.")
    quality_batch_rows: int = Field(
        default=5000,
        ge=1,
        description="Rows per suite GX validates per interval at most: "
        "beyond, a sample of whole conversations.",
    )
    quality_interval_s: float = Field(
        default=15, gt=0, description="Seconds between GX micro-batch validations."
    )

    # Lineage
    lineage: Literal["file", "http", "kafka", "none"] = Field(
        default="file", description="OpenLineage transport: a file, HTTP to a catalog, Kafka, or none."
    )
    lineage_file: Path | None = Field(
        default=None, description="The file transport's file; default: OUTPUT_DIR/lineage.jsonl."
    )
    lineage_url: str | None = Field(default=None, description="The http transport's catalog, e.g. http://127.0.0.1:5000.")
    lineage_topic: str = Field(default="openlineage.events", description="The kafka transport's topic.")
    lineage_namespace: str = Field(default="coachflow", description="The job's OpenLineage namespace.")
    lineage_job: str = Field(default="coaching", description="The job's OpenLineage name.")
    lineage_interval_s: float = Field(default=60, gt=0, description="Seconds between RUNNING events.")
    lineage_run_id: str | None = Field(
        default=None, description="The run id (give all processes of one job the same)."
    )

    # Metrics
    metrics_port: int | None = Field(
        default=None, ge=0, le=65_535,
        description=f"Prometheus /metrics port; unset: {DEFAULT_METRICS_PORT} in Kafka mode, off in embedded "
        "mode; 0: off. Process i of a multi-process job (bytewax.run -i) serves on port + i.",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address the metrics endpoint listens on (0.0.0.0: every interface)."
    )
    metrics_lag_interval_s: float = Field(
        default=5,
        gt=0,
        description="Seconds between fetches of the input partitions' high watermarks (consumer lag).",
    )

    @model_validator(mode="after")
    def _shares_are_co_partitioned(self) -> Settings:
        shares = self.kafka_partitions
        if shares is None:
            return self
        if not shares or len(set(shares)) != len(shares) or min(shares) < 0:
            raise ValueError(f"COACH_KAFKA_PARTITIONS must list distinct partition numbers, got {shares}")
        if self.input_key != "customer":
            raise ValueError(
                "COACH_KAFKA_PARTITIONS gives this job a share of the input partitions, "
                "so a customer's context, conversations and feedback must share a partition number: "
                "key the events and feedback topics "
                "by customer id and set COACH_INPUT_KEY=customer"
            )
        return self

    _client_properties: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _read_kafka_credentials(self) -> Settings:
        """The client properties of the file, the JSON and the password, read once, in that order."""
        if self.kafka_password is not None and self.kafka_password_file is not None:
            raise ValueError("set COACH_KAFKA_PASSWORD or COACH_KAFKA_PASSWORD_FILE, not both")
        properties: dict[str, str] = {}
        if self.kafka_config_file is not None:
            properties.update(read_properties(_credentials_file(self.kafka_config_file)))
        properties.update(self.kafka_config)
        if self.kafka_password_file is not None:
            properties["sasl.password"] = read_secret(_credentials_file(self.kafka_password_file))
        elif self.kafka_password is not None:
            properties["sasl.password"] = self.kafka_password.get_secret_value()
        self._client_properties = properties
        return self

    def kafka_client(self, **defaults: Any) -> KafkaClientConfig:
        """One Kafka client's librdkafka configuration: the brokers, the client's ``defaults``, then the
        configured properties and credentials, which win; its log goes through ``coachflow.kafka``."""
        return KafkaClientConfig(client_config({"bootstrap.servers": self.brokers, **defaults,
                                                **self._client_properties}))

    @property
    def kafka_mode(self) -> bool:
        return bool(self.brokers)

    @property
    def broker_list(self) -> list[str]:
        return [b.strip() for b in (self.brokers or "").split(",") if b.strip()]

    @property
    def metrics_base_port(self) -> int | None:
        """Process 0's metrics port, or None when metrics are off."""
        port = self.metrics_port
        if port is None:
            port = DEFAULT_METRICS_PORT if self.kafka_mode else 0
        return port or None

    @property
    def should_print(self) -> bool:
        return (not self.kafka_mode) if self.print_suggestions is None else self.print_suggestions

    def topic(self, kind: str) -> str | None:
        """The topic name of catalog entry ``kind`` (None: an optional topic that is not set)."""
        return getattr(self, topic(kind).setting)

    def outputs(self) -> dict[str, str]:
        """Output kind -> topic name, in catalog order."""
        return {spec.kind: getattr(self, spec.setting) for spec in OUTPUTS}

    def inputs(self) -> dict[str, str]:
        """Input kind -> topic name, in catalog order."""
        return {spec.kind: getattr(self, spec.setting) for spec in INPUTS}

    def boundary(self, step: str, owns: Callable[[object], bool] | None = None) -> Boundary:
        """The error boundary of step ``step`` (``operators.boundary``)."""
        if owns is None:
            return Boundary(step, self.max_payload_bytes, self.max_failures_in_a_row)
        return Boundary(step, self.max_payload_bytes, self.max_failures_in_a_row, owns)

    def guard_config(self, run_id: str | None = None) -> GuardConfig:
        return GuardConfig(
            idle_s=self.session_gap_s, run_id=run_id, passthrough=True, untemplated=self.suggest_untemplated,
            payload_limit=self.max_payload_bytes,
        )

    def retention_ms(self) -> dict[str, int]:
        """Topic -> ``retention.ms`` for the topics whose retention the job sets (docs/security.md)."""
        days = {"decisions": self.retention_decisions_days, "dlq": self.retention_dlq_days,
                "feedback": self.retention_feedback_days}
        return {getattr(self, topic(kind).setting): round(value * DAY_MS) for kind, value in days.items()}

    def acceptance_config(self) -> AcceptanceConfig:
        return AcceptanceConfig(
            ttl_s=self.feedback_ttl_s,
            wait_s=self.feedback_wait_s,
            similarity=self.accept_similarity,
            channels=self.accept_infer,
            payload_limit=self.max_payload_bytes,
        )

    def parse_limits(self) -> ParseLimits:
        return ParseLimits(
            max_payload_bytes=self.max_payload_bytes,
            max_text_chars=self.max_text_chars,
            json=JsonLimits(
                self.max_json_depth, self.max_json_keys, self.max_json_items, self.max_json_string_chars
            ),
            check_keys=self.kafka_mode,
            key_by=self.input_key,
        )

    def join_config(self) -> JoinConfig:
        return JoinConfig(
            hold_s=self.context_wait_ms / 1000,
            idle_s=self.session_gap_s,
            context_ttl_s=self.context_ttl_s,
            payload_limit=self.max_payload_bytes,
        )

    def conversation_config(self) -> ConversationConfig:
        return ConversationConfig(
            window_s=self.window_s,
            recent_turns=self.recent_turns,
            allowed_lateness_s=self.allowed_lateness_s,
            session_gap_s=self.session_gap_s,
            tombstone_s=self.tombstone_s,
            silence_alert_s_voice=self.silence_alert_s_voice,
            silence_alert_s_chat=self.silence_alert_s_chat,
            complaint_alert_count=self.complaint_alert_count,
            alert_cooldown_s=self.alert_cooldown_s,
            payload_limit=self.max_payload_bytes,
        )

    def lineage_config(self) -> LineageConfig:
        return LineageConfig(
            transport=self.lineage,
            file=self.lineage_file or Path(self.output_dir) / "lineage.jsonl",
            url=self.lineage_url,
            brokers=self.brokers,
            kafka_config=self.kafka_client(),
            topic=self.lineage_topic,
            namespace=self.lineage_namespace,
            job=self.lineage_job,
            interval_s=self.lineage_interval_s,
            run_id=self.lineage_run_id,
        )

    def policy_store(self) -> PolicyStore:
        return PolicyStore(
            self.policy,
            reload_s=self.policy_reload_s,
            brokers=self.brokers if self.kafka_mode else None,
            topic=self.policy_topic,
            kafka_config=self.kafka_client(),
        )


def _default(field) -> str:
    if field.default_factory is not None:
        return "`{}`"
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, Path):
        with contextlib.suppress(ValueError):  # a path outside the project stays absolute
            value = value.relative_to(ROOT)
    if isinstance(value, bool):
        value = str(value).lower()
    return f"`{value}`"


def reference_table(settings: type[BaseSettings] | None = None) -> str:
    """A configuration reference: one row per variable of ``settings``.

    The default is docs/operations.md's, ``COACH_*``.
    """
    settings = settings or Settings
    prefix = settings.model_config.get("env_prefix", "")
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in settings.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name.upper()}` | {_default(field)} | {meaning} |")
    return "\n".join(rows) + "\n"


#: The page holding the configuration reference, between these two markers.
REFERENCE_DOC = ROOT / "docs" / "operations.md"
REFERENCE_START, REFERENCE_END = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"


def with_reference_table(text: str) -> str:
    """``text`` (the reference page) with ``reference_table()`` between its markers.

    Raises ValueError when the page lacks either marker.
    """
    head, start, rest = text.partition(REFERENCE_START)
    _, end, tail = rest.partition(REFERENCE_END)
    if not start or not end:
        raise ValueError(f"the page lacks {REFERENCE_START.strip()} ... {REFERENCE_END}")
    return head + start + reference_table() + end + tail
