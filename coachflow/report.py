"""``coach report DIR``: acceptance, alert and suppression rates for supervisors.

Reads an embedded run's output directory (``decisions.jsonl``,
``acceptance.jsonl``, ``alerts.jsonl``, ``suggestions.jsonl`` and
``feedback.jsonl``; any may be missing or empty) or, with ``--brokers``, the
same topics to their current end, and with polars computes, overall and per
(model version, policy version, experiment arm):

- prediction points, how many were shown and suppressed, and why;
- alerts per kind per 100 conversations;
- acceptance, click-based and inferred side by side (accepted / judged);

then per guardrail rule how often it blocked or rewrote a candidate and how
the suggestions it changed were received, and acceptance per action. It prints
a readable report (or one JSON object with ``--json``) and writes a PNG chart
of acceptance over time (one line per mode, and per arm when there are several).

Outputs are at-least-once, so every input is de-duplicated by its id first.
Click verdicts come from ``acceptance`` records with ``mode="click"``; for
suggestions without one, the last accepted/edited/dismissed ``feedback`` event
stands in.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.topics import topic

if TYPE_CHECKING:
    import polars as pl
else:
    class _Polars:
        """polars, imported on first use: ``coach`` builds its parser with add_arguments and starts fast."""

        def __getattr__(self, name: str):
            import polars

            globals()["pl"] = polars
            return getattr(polars, name)

    pl = _Polars()

#: The topic kinds the report reads (``schemas.topics``): ``<kind>.jsonl`` in a directory, or the topic.
SOURCES = ("decisions", "acceptance", "alerts", "suggestions", "feedback")
MODES = ("click", "inferred")
GROUP = ["model_version", "policy_version", "arm"]
PREDICTION = ("shown", "suppressed")
# Group keys are strings with "" for "none" while aggregating (joins and group_by then need no null handling).
NONE = ""


@cache
def schemas() -> dict[str, dict]:
    """The polars schema of each input's frame (and of the decisions' rule verdicts)."""
    text, moment = pl.String, pl.Datetime("us", "UTC")
    return {
        "decisions": {
            "decision_id": text, "decided_at": moment, "conversation_id": text, "outcome": text,
            "reasons": pl.List(text), "suggestion_id": text, "action": text, "model_version": text,
            "policy_version": text, "arm": text, "experiment": text,
        },
        "rules": {"decision_id": text, "rule_id": text, "verdict": text},
        "acceptance": {
            "acceptance_id": text, "suggestion_id": text, "decision_id": text, "conversation_id": text,
            "mode": text, "outcome": text, "accepted": pl.Boolean, "action": text, "model_version": text,
            "policy_version": text, "arm": text, "rules": pl.List(text), "at": moment,
        },
        "alerts": {"alert_id": text, "conversation_id": text, "kind": text, "raised_at": moment},
        "suggestions": {
            "suggestion_id": text, "decision_id": text, "conversation_id": text, "action": text,
            "model_version": text, "policy_version": text, "created_at": moment,
        },
        "feedback": {"feedback_id": text, "suggestion_id": text, "conversation_id": text, "event": text,
                     "at": moment},
    }


# --------------------------------------------------------------------------- reading


def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _rows(kind: str, record: dict) -> dict:
    """The fields the report uses from one output record."""
    if kind == "decisions":
        return {
            "decision_id": record["decision_id"], "decided_at": _ts(record.get("decided_at")),
            "conversation_id": record.get("conversation_id"), "outcome": record["outcome"],
            "reasons": list(record.get("reasons") or []), "suggestion_id": record.get("suggestion_id"),
            "action": (record.get("suggestion") or {}).get("action"),
            "model_version": record.get("model_version"), "policy_version": record.get("policy_version"),
            "arm": record.get("arm"), "experiment": record.get("experiment"),
        }
    if kind == "acceptance":
        return {
            "acceptance_id": record["acceptance_id"], "suggestion_id": record["suggestion_id"],
            "decision_id": record.get("decision_id"), "conversation_id": record.get("conversation_id"),
            "mode": record["mode"], "outcome": record.get("outcome"), "accepted": bool(record["accepted"]),
            "action": record.get("action"), "model_version": record.get("model_version"),
            "policy_version": record.get("policy_version"),
            # Acceptance defaults the arm to "control"; it only means something inside an experiment.
            "arm": record.get("arm") if record.get("experiment") else None,
            "rules": list(record.get("rules") or []), "at": _ts(record.get("at")),
        }
    if kind == "alerts":
        return {"alert_id": record["alert_id"], "conversation_id": record.get("conversation_id"),
                "kind": record["kind"], "raised_at": _ts(record.get("raised_at"))}
    if kind == "suggestions":
        return {
            "suggestion_id": record["suggestion_id"], "decision_id": record.get("decision_id"),
            "conversation_id": record.get("conversation_id"), "action": record.get("action"),
            "model_version": record.get("model_version"), "policy_version": record.get("policy_version"),
            "created_at": _ts(record.get("created_at")),
        }
    return {"feedback_id": record["feedback_id"], "suggestion_id": record["suggestion_id"],
            "conversation_id": record.get("conversation_id"), "event": record["event"],
            "at": _ts(record.get("at"))}


def _file_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as lines:
        for line in lines:
            if line.strip():
                yield line


class _NoTopic(LookupError):
    pass


def _topic_values(brokers: str, topic: str, timeout: float = 10.0, idle_s: float = 15.0) -> Iterator[bytes]:
    """Every value of a topic up to its end as of now (as ``coachflow.explain`` reads it)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from coachflow.config import Settings

    consumer = Consumer(Settings(brokers=brokers).kafka_client(**{
        "group.id": "coachflow-report", "enable.auto.commit": False, "auto.offset.reset": "earliest"}))
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
        if meta.error is not None:
            raise _NoTopic(meta.error.str()) if meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART \
                else LookupError(meta.error.str())
        parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=timeout) for p in parts}
        consumer.assign(parts)
        done = {p for p, (low, high) in ends.items() if high <= low}
        last = time.monotonic()
        while len(done) < len(ends):
            messages = consumer.consume(500, 1.0)
            if not messages and time.monotonic() - last > idle_s:
                raise TimeoutError(f"no records for {idle_s:.0f} s before the end of {topic}")
            for msg in messages:
                if msg.error():
                    continue
                last = time.monotonic()
                if msg.value() is not None:
                    yield msg.value()
                if msg.offset() + 1 >= ends[msg.partition()][1]:
                    done.add(msg.partition())
    finally:
        consumer.close()


def _load(kind: str, lines: Iterable[bytes]) -> tuple[pl.DataFrame, pl.DataFrame | None, int]:
    """The records' frame (and the decisions' rule verdicts), and how many lines were unreadable."""
    rows, rules, bad = [], [], 0
    for line in lines:
        try:
            record = json.loads(line)
            rows.append(_rows(kind, record))
        except (ValueError, KeyError, TypeError, AttributeError):
            bad += 1
            continue
        if kind == "decisions":
            rules.extend({"decision_id": record["decision_id"], "rule_id": r.get("rule_id"),
                          "verdict": r.get("outcome")} for r in record.get("rules") or [])
    frame = pl.DataFrame(rows, schema=schemas()[kind])
    verdicts = pl.DataFrame(rules, schema=schemas()["rules"]) if kind == "decisions" else None
    return frame, verdicts, bad


def read_sources(directory: Path | None = None, brokers: str | None = None) -> tuple[dict, dict]:
    """The five inputs as frames, and per input where it came from and what was found."""
    frames: dict[str, pl.DataFrame] = {}
    status: dict[str, dict] = {}
    for kind in SOURCES:
        spec = topic(kind)
        name = f"{kind}.jsonl"
        if brokers:
            where = os.environ.get(f"COACH_{spec.setting.upper()}", spec.default)
            try:
                frame, rules, bad = _load(kind, _topic_values(brokers, where))
                state = "ok"
            except _NoTopic:
                frame, rules, bad = _load(kind, [])
                state = "missing"
            except Exception as exc:  # noqa: BLE001 - one unreadable topic must not stop the report
                frame, rules, bad = _load(kind, [])
                state, error = "error", str(exc)
        else:
            path = Path(directory) / name
            where = str(path)
            if path.is_file():
                frame, rules, bad = _load(kind, _file_lines(path))
                state = "ok"
            else:
                frame, rules, bad = _load(kind, [])
                state = "missing"
        if state == "ok" and frame.is_empty():
            state = "empty"
        frames[kind] = frame
        if rules is not None:
            frames["rules"] = rules
        status[kind] = {"source": where, "status": state, "records": frame.height, "unreadable": bad}
        if state == "error":
            status[kind]["error"] = error
    return frames, status


# --------------------------------------------------------------------------- shaping


def _dedup(frame: pl.DataFrame, key: str, order: str | None = None) -> pl.DataFrame:
    if order is not None:
        frame = frame.sort(order, nulls_last=False)
    return frame.unique(subset=[key], keep="last", maintain_order=True)


def _keys(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(c).fill_null(NONE) for c in GROUP)


def prepare(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """De-duplicated frames with each record's group, one verdict per suggestion and mode."""
    decisions = _keys(_dedup(frames["decisions"], "decision_id", "decided_at"))
    rule_verdicts = frames["rules"].unique(maintain_order=True)
    suggestions = _dedup(frames["suggestions"], "suggestion_id", "created_at")
    alerts = _dedup(frames["alerts"], "alert_id", "raised_at")
    acceptance = _dedup(frames["acceptance"], "acceptance_id", "at")
    feedback = _dedup(frames["feedback"], "feedback_id", "at")

    # Verdicts: acceptance records, plus click verdicts from feedback where no click acceptance exists.
    verdicts = acceptance.select(
        "suggestion_id",
        "decision_id",
        "mode",
        "accepted",
        "action",
        "model_version",
        "policy_version",
        "arm",
        "rules",
        "at",
        pl.lit("acceptance").alias("origin"),
    ).unique(subset=["suggestion_id", "mode"], keep="last", maintain_order=True)
    clicked = (
        feedback.filter(pl.col("event").is_in(["accepted", "edited", "dismissed"]))
        .sort("at")
        .group_by("suggestion_id", maintain_order=True)
        .last()
        .join(
            verdicts.filter(pl.col("mode") == "click").select("suggestion_id"), on="suggestion_id", how="anti"
        )
        .join(
            suggestions.select("suggestion_id", "decision_id", "action", "model_version", "policy_version"),
            on="suggestion_id",
            how="left",
        )
        .select(
            "suggestion_id",
            "decision_id",
            pl.lit("click").alias("mode"),
            pl.col("event").is_in(["accepted", "edited"]).alias("accepted"),
            "action",
            "model_version",
            "policy_version",
            pl.lit(None, pl.String).alias("arm"),
            pl.lit([], pl.List(pl.String)).alias("rules"),
            "at",
            pl.lit("feedback").alias("origin"),
        )
    )
    verdicts = pl.concat([verdicts, clicked], how="vertical_relaxed")
    # Group, action and suggestion time from the decision (then the suggestion) when at hand. Only the
    # decision that showed it: the job also records each feedback input as a decision naming the suggestion.
    shown = decisions.filter((pl.col("outcome") == "shown") & pl.col("suggestion_id").is_not_null()).select(
        "suggestion_id", pl.col("decision_id").alias("d_decision_id"), pl.col("action").alias("d_action"),
        pl.col("decided_at").alias("d_time"), *[pl.col(c).alias(f"d_{c}") for c in GROUP],
    )
    verdicts = (
        verdicts.join(shown, on="suggestion_id", how="left")
        .join(suggestions.select("suggestion_id", pl.col("created_at").alias("s_time")), on="suggestion_id",
              how="left")
        .with_columns(
            pl.coalesce("d_decision_id", "decision_id").alias("decision_id"),
            pl.coalesce("d_action", "action").alias("action"),
            pl.coalesce("s_time", "d_time").alias("suggested_at"),
            *[pl.when(pl.col("d_decision_id").is_not_null()).then(pl.col(f"d_{c}")).otherwise(pl.col(c))
              .fill_null(NONE).alias(c) for c in GROUP],
        )
        .select("suggestion_id", "decision_id", "mode", "accepted", "action", *GROUP, "rules", "at",
                "suggested_at", "origin")
    )

    # Each conversation's group: that of its last prediction point, else of its last decision.
    ranked = decisions.filter(pl.col("conversation_id").is_not_null()).with_columns(
        pl.col("outcome").is_in(PREDICTION).alias("_pp")
    ).sort("_pp", "decided_at", nulls_last=False)
    conversations = ranked.group_by("conversation_id").agg(pl.col(c).last() for c in GROUP)
    others = pl.concat([
        suggestions.select("conversation_id", "model_version", "policy_version"),
        alerts.select("conversation_id", pl.lit(None, pl.String).alias("model_version"),
                      pl.lit(None, pl.String).alias("policy_version")),
    ]).filter(pl.col("conversation_id").is_not_null()).with_columns(pl.lit(None, pl.String).alias("arm"))
    others = _keys(others.group_by("conversation_id", maintain_order=True).first()).join(
        conversations, on="conversation_id", how="anti")
    conversations = pl.concat([conversations, others.select("conversation_id", *GROUP)])
    alerts = alerts.join(conversations, on="conversation_id", how="left").pipe(_keys)

    rules = rule_verdicts.join(
        decisions.select("decision_id", "outcome", "reasons", "suggestion_id"), on="decision_id", how="inner")
    return {"decisions": decisions, "rules": rules, "verdicts": verdicts, "alerts": alerts,
            "conversations": conversations, "suggestions": suggestions}


# --------------------------------------------------------------------------- aggregation


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _acceptance(verdicts: pl.DataFrame) -> dict:
    counts = verdicts.group_by("mode").agg(
        pl.len().alias("judged"), pl.col("accepted").sum().alias("accepted")
    )
    found = {row["mode"]: row for row in counts.iter_rows(named=True)}
    out = {}
    for mode in MODES:
        judged = int(found.get(mode, {}).get("judged", 0))
        accepted = int(found.get(mode, {}).get("accepted", 0))
        out[mode] = {"accepted": accepted, "judged": judged, "rate": _rate(accepted, judged)}
    return out


def _summary(data: dict[str, pl.DataFrame]) -> dict:
    decisions, alerts, verdicts = data["decisions"], data["alerts"], data["verdicts"]
    outcomes = dict(decisions.group_by("outcome").len().iter_rows())
    points = int(outcomes.get("shown", 0) + outcomes.get("suppressed", 0))
    reasons = (
        decisions.filter(pl.col("outcome") == "suppressed").select(pl.col("reasons").explode())
        .drop_nulls().group_by("reasons").len().sort(["len", "reasons"], descending=[True, False])
    )
    conversations = data["conversations"].height
    kinds = alerts.group_by("kind").len().sort(["len", "kind"], descending=[True, False])

    def per_100(n: int) -> float | None:
        return round(100 * n / conversations, 2) if conversations else None

    return {
        "conversations": conversations,
        "conversations_with_prediction_points": decisions.filter(
            pl.col("outcome").is_in(PREDICTION) & pl.col("conversation_id").is_not_null()
        )
        .get_column("conversation_id")
        .n_unique(),
        "prediction_points": points,
        "shown": int(outcomes.get("shown", 0)),
        "shown_rate": _rate(outcomes.get("shown", 0), points),
        "suppressed": int(outcomes.get("suppressed", 0)),
        "suppression_rate": _rate(outcomes.get("suppressed", 0), points),
        "recorded": int(outcomes.get("recorded", 0)),
        "suppression_reasons": {r: int(n) for r, n in reasons.iter_rows()},
        "alerts": {
            "total": alerts.height,
            "per_100_conversations": per_100(alerts.height),
            "by_kind": {
                k: {"count": int(n), "per_100_conversations": per_100(n)} for k, n in kinds.iter_rows()
            },
        },
        "acceptance": _acceptance(verdicts),
    }


def _per_rule(data: dict[str, pl.DataFrame]) -> list[dict]:
    rules, verdicts = data["rules"], data["verdicts"]
    points = rules.filter(pl.col("outcome").is_in(PREDICTION))
    counts = points.group_by("rule_id").agg(
        pl.len().alias("evaluated"),
        (pl.col("verdict") == "block").sum().alias("blocked"),
        (pl.col("verdict") == "rewrite").sum().alias("rewrote"),
        (pl.col("verdict") == "alert").sum().alias("alerted"),
        ((pl.col("outcome") == "suppressed") & pl.col("reasons").list.contains(pl.col("rule_id")))
        .sum()
        .alias("suppressed"),
        ((pl.col("outcome") == "shown") & pl.col("verdict").is_in(["block", "rewrite"]))
        .sum()
        .alias("changed_shown"),
    )
    # Suggestions a rule changed: by the decision's verdicts, or as the acceptance record names them.
    changed = pl.concat([
        rules.filter((pl.col("outcome") == "shown") & pl.col("verdict").is_in(["block", "rewrite"]))
        .select("decision_id", "rule_id"),
        verdicts.select("decision_id", pl.col("rules").alias("rule_id")).explode("rule_id").drop_nulls(),
    ]).unique()
    judged = verdicts.join(changed, on="decision_id", how="inner")
    names = pl.concat([counts.select("rule_id"), changed.select("rule_id")]).unique().sort("rule_id")
    table = names.join(counts, on="rule_id", how="left").fill_null(0)
    out = []
    for row in table.iter_rows(named=True):
        out.append({
            **{k: int(v) if k != "rule_id" else v for k, v in row.items()},
            "block_rate": _rate(row["blocked"], row["evaluated"]),
            "rewrite_rate": _rate(row["rewrote"], row["evaluated"]),
            "acceptance_when_changed": _acceptance(judged.filter(pl.col("rule_id") == row["rule_id"])),
        })
    out.sort(key=lambda r: (-(r["blocked"] + r["rewrote"]), r["rule_id"]))
    return out


def _per_action(data: dict[str, pl.DataFrame], top: int) -> list[dict]:
    decisions, verdicts = data["decisions"], data["verdicts"]
    shown = decisions.filter(pl.col("outcome") == "shown").group_by("action").len("shown")
    judged = verdicts.group_by("action").agg(pl.len().alias("judged"))
    table = (
        pl.concat([shown.select("action"), judged.select("action")]).drop_nulls().unique()
        .join(shown, on="action", how="left").join(judged, on="action", how="left").fill_null(0)
        .sort(["shown", "judged", "action"], descending=[True, True, False]).head(top)
    )
    return [{"action": a, "shown": int(s), "acceptance": _acceptance(verdicts.filter(pl.col("action") == a))}
            for a, s, _ in table.iter_rows()]


_STEPS = [
    (1, "1s"),
    (5, "5s"),
    (10, "10s"),
    (30, "30s"),
    (60, "1m"),
    (300, "5m"),
    (900, "15m"),
    (1800, "30m"),
    (3600, "1h"),
    (6 * 3600, "6h"),
    (86400, "1d"),
    (7 * 86400, "1w"),
]


def _bucket_for(span_s: float, buckets: int = 24) -> str:
    return next((every for seconds, every in _STEPS if seconds * buckets >= span_s), "1w")


def timeline(
    verdicts: pl.DataFrame, by: str = "verdict", every: str | None = None
) -> tuple[pl.DataFrame, str]:
    """Acceptance per time bucket, mode and arm: bucket, mode, arm, accepted, judged, rate."""
    column = "at" if by == "verdict" else "suggested_at"
    timed = verdicts.with_columns(pl.coalesce(column, "at", "suggested_at").alias("t")).drop_nulls("t")
    if every is None:
        span = (
            timed.select((pl.col("t").max() - pl.col("t").min()).dt.total_seconds()).item()
            if timed.height
            else 0
        )
        every = _bucket_for(float(span or 0))
    table = (
        timed.with_columns(pl.col("t").dt.truncate(every).alias("bucket"))
        .group_by("bucket", "mode", "arm")
        .agg(pl.col("accepted").sum().alias("accepted"), pl.len().alias("judged"))
        .with_columns((pl.col("accepted") / pl.col("judged")).round(4).alias("rate"))
        .sort("mode", "arm", "bucket")
    )
    return table, every


def build_report(frames: dict[str, pl.DataFrame], top: int = 10, by: str = "verdict",
                 every: str | None = None) -> dict:
    data = prepare(frames)
    groups = (
        pl.concat([data["decisions"].filter(pl.col("outcome").is_in(PREDICTION)).select(GROUP),
                   data["verdicts"].select(GROUP)])
        .unique().sort(GROUP)
    )
    per_group = []
    for key in groups.iter_rows(named=True):
        match = pl.all_horizontal(pl.col(c) == v for c, v in key.items())
        part = {name: (frame.filter(match) if set(GROUP) <= set(frame.columns) else frame)
                for name, frame in data.items()}
        per_group.append({**{c: (v or None) for c, v in key.items()}, **_summary(part)})
    series, every = timeline(data["verdicts"], by, every)
    return {
        "overall": _summary(data),
        "groups": per_group,
        "rules": _per_rule(data),
        "actions": _per_action(data, top),
        "timeline": {
            "by": by,
            "every": every,
            "points": [
                {**row, "bucket": row["bucket"].isoformat().replace("+00:00", "Z"), "arm": row["arm"] or None}
                for row in series.iter_rows(named=True)
            ],
        },
        "_series": series,
    }


# --------------------------------------------------------------------------- knowledge cards

#: The knowledge job's topic kinds the report reads: its cards and the agent UIs' feedback on them.
KNOWLEDGE_SOURCES = ("knowledge", "knowledge_feedback")


def _knowledge_rows(kind: str, record: dict) -> dict:
    if kind == "knowledge":
        return {"card_id": record["card_id"], "kb_version": record["kb_version"],
                "ranker_version": record.get("ranker_version"), "created_at": _ts(record.get("created_at"))}
    return {"feedback_id": record["feedback_id"], "card_id": record["card_id"], "event": record["event"],
            "at": _ts(record.get("at"))}


def read_knowledge(directory: Path | None = None, brokers: str | None = None) -> tuple[dict, dict]:
    """Cards and card feedback as frames: ``DIR/knowledge/<kind>.jsonl`` (the knowledge job's
    default output directory beside the coaching job's) or ``DIR/<kind>.jsonl``, or the topics."""
    text, moment = pl.String, pl.Datetime("us", "UTC")
    shapes = {
        "knowledge": {"card_id": text, "kb_version": text, "ranker_version": text, "created_at": moment},
        "knowledge_feedback": {"feedback_id": text, "card_id": text, "event": text, "at": moment},
    }
    frames, status = {}, {}
    for kind in KNOWLEDGE_SOURCES:
        spec = topic(kind)
        if brokers:
            where = os.environ.get(f"COACH_KNOWLEDGE_{spec.setting.upper()}", spec.default)
            try:
                lines, state = list(_topic_values(brokers, where)), "ok"
            except _NoTopic:
                lines, state = [], "missing"
            except Exception:  # noqa: BLE001 - an unreadable topic must not stop the report
                lines, state = [], "error"
        else:
            candidates = [Path(directory) / "knowledge" / f"{kind}.jsonl", Path(directory) / f"{kind}.jsonl"]
            path = next((c for c in candidates if c.is_file()), candidates[0])
            where = str(path)
            lines, state = (list(_file_lines(path)), "ok") if path.is_file() else ([], "missing")
        rows, bad = [], 0
        for line in lines:
            try:
                rows.append(_knowledge_rows(kind, json.loads(line)))
            except (ValueError, KeyError, TypeError, AttributeError):
                bad += 1
        frames[kind] = pl.DataFrame(rows, schema=shapes[kind])
        status[kind] = {"source": where, "status": "empty" if state == "ok" and not rows else state,
                        "records": len(rows), "unreadable": bad}
    return frames, status


def knowledge_report(frames: dict[str, pl.DataFrame]) -> dict:
    """Card acceptance overall and per knowledge-base version: a card is judged by the last
    accepted or dismissed report of the agent UI on it (``CardFeedback``)."""
    cards = _dedup(frames["knowledge"], "card_id", "created_at")
    feedback = _dedup(frames["knowledge_feedback"], "feedback_id", "at")
    verdicts = (feedback.filter(pl.col("event").is_in(["accepted", "dismissed"])).sort("at")
                .group_by("card_id", maintain_order=True).last().select("card_id", "event"))
    judged = cards.join(verdicts, on="card_id", how="left")

    def figures(frame: pl.DataFrame) -> dict:
        accepted = frame.filter(pl.col("event") == "accepted").height
        dismissed = frame.filter(pl.col("event") == "dismissed").height
        return {
            "cards": frame.height,
            "judged": accepted + dismissed,
            "accepted": accepted,
            "dismissed": dismissed,
            "acceptance": _rate(accepted, accepted + dismissed),
        }

    unknown = verdicts.join(cards.select("card_id"), on="card_id", how="anti").height
    per_version = [
        {"kb_version": version, **figures(part)}
        for (version,), part in judged.sort("kb_version").group_by("kb_version", maintain_order=True)
    ]
    return {"overall": figures(judged), "by_kb_version": per_version, "feedback_for_unknown_cards": unknown}


# --------------------------------------------------------------------------- output


def write_chart(series: pl.DataFrame, path: Path, title: str = "Suggestion acceptance over time") -> bool:
    """A PNG of acceptance per bucket: a line per mode (and arm, if several); False if nothing to plot."""
    if series.is_empty():
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = sorted(series.get_column("arm").unique().to_list())
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    try:
        # Colour by arm (by mode when there is one arm); solid for clicks, dashed for inferred.
        for (mode, arm), line in series.group_by("mode", "arm", maintain_order=True):
            several = len(arms) > 1
            label = f"{mode} · {arm or 'no experiment'}" if several else mode
            colour = colours[(arms.index(arm) if several else MODES.index(mode)) % len(colours)]
            ax.plot(line.get_column("bucket").to_list(), (line.get_column("rate") * 100).to_list(),
                    marker="o", color=colour, linestyle="-" if mode == "click" else "--", label=label)
        ax.set_ylim(-3, 103)
        ax.set_ylabel("accepted / judged (%)")
        ax.set_xlabel("time (UTC)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
        fig.autofmt_xdate()
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return True


def _pct(rate: float | None) -> str:
    return "    -" if rate is None else f"{100 * rate:5.1f}%"


def _acc(acceptance: dict) -> str:
    return "  ".join(
        f"{mode} {_pct(a['rate'])} ({a['accepted']}/{a['judged']})" for mode, a in acceptance.items()
    )


def render(report: dict) -> str:
    lines = []
    src = report.get("sources", {})
    for kind, info in src.items():
        extra = f", {info['unreadable']} unreadable" if info.get("unreadable") else ""
        extra += f" ({info['error']})" if info.get("error") else ""
        lines.append(f"{kind:<12} {info['status']:<8} {info['records']:>7} records  {info['source']}{extra}")
    if report.get("missing"):
        lines.append("missing or empty: " + ", ".join(report["missing"]))

    def block(title: str, s: dict) -> None:
        lines.append("")
        lines.append(title)
        with_points = s["conversations_with_prediction_points"]
        also = f" ({with_points} with prediction points)" if with_points != s["conversations"] else ""
        lines.append(
            f"  conversations {s['conversations']}{also}, prediction points {s['prediction_points']}: "
            f"shown {s['shown']} ({_pct(s['shown_rate']).strip()}), "
            f"suppressed {s['suppressed']} ({_pct(s['suppression_rate']).strip()})"
        )
        if s["suppression_reasons"]:
            lines.append(
                "  suppressed by: " + ", ".join(f"{r} {n}" for r, n in s["suppression_reasons"].items())
            )
        a = s["alerts"]
        per = "-" if a["per_100_conversations"] is None else f"{a['per_100_conversations']:.1f}"
        lines.append(f"  alerts {a['total']} ({per} per 100 conversations)" + (": " if a["by_kind"] else "")
                     + ", ".join(f"{k} {v['count']} ({v['per_100_conversations']:.1f})"
                                 for k, v in a["by_kind"].items()))
        lines.append("  acceptance: " + _acc(s["acceptance"]))

    block("Overall", report["overall"])
    for g in report["groups"]:
        block(
            f"model {g['model_version'] or '-'} · policy {g['policy_version'] or '-'}"
            f" · arm {g['arm'] or '-'}",
            g,
        )
    if report["rules"]:
        lines.append("")
        lines.append(f"{'Rule':<36} {'eval':>6} {'block':>6} {'rewr':>5} {'supp':>5} {'chg':>5}  "
                     "acceptance of suggestions it changed")
        for r in report["rules"]:
            lines.append(
                f"{r['rule_id']:<36} {r['evaluated']:>6} {r['blocked']:>6} {r['rewrote']:>5} "
                f"{r['suppressed']:>5} {r['changed_shown']:>5}  {_acc(r['acceptance_when_changed'])}"
            )
    if report["actions"]:
        lines.append("")
        lines.append(f"{'Action (top ' + str(len(report['actions'])) + ')':<36} {'shown':>6}  acceptance")
        for a in report["actions"]:
            lines.append(f"{a['action']:<36} {a['shown']:>6}  {_acc(a['acceptance'])}")
    knowledge = report.get("knowledge")
    if knowledge and knowledge["overall"]["cards"]:
        lines.append("")
        lines.append(f"{'Knowledge cards by KB version':<36} {'cards':>6} {'judged':>6}  acceptance")
        for row in [*knowledge["by_kb_version"], {"kb_version": "all", **knowledge["overall"]}]:
            lines.append(f"{row['kb_version']:<36} {row['cards']:>6} {row['judged']:>6}  "
                         f"{_pct(row['acceptance'])} ({row['accepted']}/{row['judged']})")
    lines.append("")
    chart = report.get("chart")
    lines.append(
        f"chart: {chart}" if chart else f"chart: not written ({report.get('chart_note', 'no data')})"
    )
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("dir", type=Path, nargs="?", default=Path("out"),
                        help="an embedded run's output directory (default out)")
    parser.add_argument(
        "--brokers", help="read the coaching.* topics (COACH_TOPIC_* names them) instead of DIR"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument(
        "--chart", type=Path, help="the PNG chart of acceptance over time (default DIR/acceptance.png)"
    )
    parser.add_argument("--no-chart", action="store_true", help="do not write the chart")
    parser.add_argument(
        "--by",
        choices=("verdict", "suggestion"),
        default="verdict",
        help="time axis: when the verdict was reached (acceptance `at`) or the suggestion was made",
    )
    parser.add_argument(
        "--bucket", help="time bucket, e.g. 30s, 5m, 1h (default: about 24 buckets over the span)"
    )
    parser.add_argument("--top", type=int, default=10, help="actions listed (default 10)")


def main_report(args) -> int:
    if args.bucket and not re.fullmatch(r"[1-9][0-9]*(s|m|h|d|w)", args.bucket):
        print(
            f"coach report: --bucket {args.bucket}: give a number and s, m, h, d or w (e.g. 5m)",
            file=sys.stderr,
        )
        return 2
    if not args.brokers and not Path(args.dir).is_dir():
        print(f"coach report: {args.dir} is not a directory", file=sys.stderr)
        return 2
    frames, sources = read_sources(None if args.brokers else args.dir, args.brokers)
    report = build_report(frames, top=args.top, by=args.by, every=args.bucket)
    series = report.pop("_series")
    card_frames, card_sources = read_knowledge(None if args.brokers else args.dir, args.brokers)
    report["knowledge"] = knowledge_report(card_frames)
    missing = [k for k, s in sources.items() if s["status"] != "ok"]
    sources.update(card_sources)
    report = {"sources": sources, "missing": missing, **report, "chart": None}
    if not args.no_chart:
        path = args.chart or (Path(args.dir) if not args.brokers else Path(".")) / "acceptance.png"
        try:
            if write_chart(series, Path(path)):
                report["chart"] = str(path)
            else:
                report["chart_note"] = "no acceptance verdicts to plot"
        except ImportError:
            report["chart_note"] = (
                "matplotlib is not installed: pip install -c requirements.lock -e '.[report]'"
            )
    else:
        report["chart_note"] = "--no-chart"
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render(report))
    if not any(s["records"] for s in sources.values()):
        print("coach report: no records found", file=sys.stderr)
        return 1
    return 0
