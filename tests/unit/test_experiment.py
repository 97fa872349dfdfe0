"""Experiment arms: deterministic, shared as configured, and counted per arm."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from coachflow.config import Settings
from coachflow.metrics import JobMetrics
from operators.acceptance import AcceptanceConfig, AcceptanceLogic
from operators.experiment import ExperimentConfig, assign, bucket
from schemas import Alert
from tests.helpers import Clock, at
from tests.unit.test_acceptance import agent, feedback, point, show, shown_decision, suggestion


def test_assignment_is_deterministic_and_salted_by_the_experiment() -> None:
    ids = [f"conv-{i}" for i in range(2000)]
    first = [assign("canary", 0.3, c) for c in ids]
    assert first == [assign("canary", 0.3, c) for c in ids]
    assert 0 <= bucket("canary", "conv-1") < 1
    other = [assign("other", 0.3, c) for c in ids]
    assert first != other  # each experiment has its own split
    # Raising the share only moves conversations from control to candidate.
    for c in ids:
        if assign("canary", 0.3, c) == "candidate":
            assert assign("canary", 0.5, c) == "candidate"


@pytest.mark.parametrize("share", [0.0, 0.05, 0.3, 0.5, 1.0])
def test_the_candidate_share_is_as_configured(share: float) -> None:
    ids = [f"star-{i}" for i in range(20_000)]
    candidate = sum(assign("canary", share, c) == "candidate" for c in ids) / len(ids)
    assert abs(candidate - share) < 0.015


def test_experiment_configuration(monkeypatch) -> None:
    monkeypatch.setenv(
        "COACH_EXPERIMENT", '{"name": "canary-1", "share": 0.1, "policy": "policies/evaluation.yaml"}'
    )
    experiment = Settings().experiment
    assert experiment.name == "canary-1" and experiment.share == 0.1 and experiment.model is None
    with pytest.raises(ValidationError):
        ExperimentConfig(name="x", share=0.5)  # no candidate
    with pytest.raises(ValidationError):
        ExperimentConfig(name="x", share=1.5, policy="p.yaml")


def _value(name: str, labels: dict) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_acceptance_and_arm_metrics() -> None:
    metrics = JobMetrics(experiment=("canary", 0.5))
    logic = AcceptanceLogic(AcceptanceConfig(), now_getter=Clock())
    show(logic, point(1, 0), suggestion("m1"), arm="candidate")
    (inferred,), _ = logic.on_item(agent(2, 1, action="bank_ask_pin"))
    (click,), _ = logic.on_item(feedback("mf1", "m1", "dismissed"))
    labels = {"mode": "inferred", "arm": "candidate", "outcome": "accepted"}
    before = _value("coachflow_acceptance_total", labels)
    before_click = _value(
        "coachflow_acceptance_total", {"mode": "click", "arm": "candidate", "outcome": "dismissed"}
    )
    by_version = {"mode": "click", "model_version": "m-1", "policy_version": "1.0.0", "accepted": "false"}
    before_version = _value("coachflow_acceptance_by_version_total", by_version)
    decisions = _value("coachflow_arm_decisions_total", {"arm": "candidate", "outcome": "shown"})
    alert = Alert(alert_id="al-1", conversation_id="c-1", customer_id="u-1", agent_id="a-1", event_id="e",
                  kind="long_silence", severity="warning", audience=["agent"], message="m",
                  event_time=at(0), raised_at=at(0))
    arm = assign("canary", 0.5, "c-1")
    alerts = _value("coachflow_arm_alerts_total", {"arm": arm, "kind": "long_silence"})
    for record in (inferred, click, shown_decision(suggestion("m2"), arm="candidate"), alert):
        metrics.observe("metrics", record)
    assert _value("coachflow_arm_alerts_total", {"arm": arm, "kind": "long_silence"}) == alerts + 1
    assert _value("coachflow_acceptance_total", labels) == before + 1
    assert _value(
        "coachflow_acceptance_total", {"mode": "click", "arm": "candidate", "outcome": "dismissed"}
    ) == (before_click + 1)
    assert _value("coachflow_acceptance_by_version_total", by_version) == before_version + 1
    assert _value("coachflow_arm_decisions_total", {"arm": "candidate", "outcome": "shown"}) == decisions + 1
    assert _value("coachflow_records_total", {"kind": "acceptance", "outcome": "published"}) >= 2
