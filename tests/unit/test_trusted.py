"""``Contract.trusted`` builds exactly what ``model_construct`` builds, at the job's call sites."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from coachflow.config import Settings
from coachflow.reference import Pipeline
from operators.envelope import Origin, RawRecord
from schemas import Candidate, Decision, RuleResult, Suggestion
from schemas._base import Contract
from tests.helpers import ROOT

SAMPLE = ROOT / "data" / "sample" / "conversations.jsonl"


def _contracts(record: BaseModel):
    """The record and every contract nested in it (in fields, lists and dicts)."""
    yield record
    stack = list(record.__dict__.values())
    while stack:
        value = stack.pop()
        if isinstance(value, Contract):
            yield value
            stack.extend(value.__dict__.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())


def _twin(record: Contract) -> Contract:
    """``model_construct`` of the same values the record was given (fields it was not given left out)."""
    return type(record).model_construct(**{name: record.__dict__[name] for name in record.model_fields_set})


def _published_by_the_pipeline() -> list:
    lines = SAMPLE.read_bytes().splitlines()
    batch = [RawRecord(value=line, key=None, origin=Origin(file=str(SAMPLE), line=number), stream="any",
                       size=len(line) + 1)
             for number, line in enumerate(lines, 1) if line.strip()]
    pipeline = Pipeline(Settings(input=SAMPLE, lineage="none"))
    return [*pipeline.process(batch), *pipeline.finish()]


def test_trusted_records_equal_model_construct_ones_field_for_field_and_byte_for_byte():
    published = _published_by_the_pipeline()
    seen: dict[str, int] = {}
    for record in published:
        for contract in _contracts(record):
            twin = _twin(contract)
            assert list(contract.__dict__.items()) == list(twin.__dict__.items()), type(contract).__name__
            assert contract.__pydantic_extra__ is None and contract.__pydantic_private__ is None
            assert contract.__pydantic_serializer__.to_json(contract) == twin.__pydantic_serializer__.to_json(
                twin
            )
            seen[type(contract).__name__] = seen.get(type(contract).__name__, 0) + 1
    # The sample exercises every record the hot path builds this way.
    for name in (
        "Decision",
        "DecisionInput",
        "RuleResult",
        "Candidate",
        "StageLatency",
        "Suggestion",
        "SuggestedResponse",
        "Alert",
        "DeadLetter",
        "SourceRef",
        "ConversationSummary",
        "SpeakerFigures",
    ):
        assert seen.get(name, 0) > 0, name


def test_trusted_fills_defaults_as_model_construct_does_and_owns_no_shared_mutable_default():
    partial = {"rule_id": "quality.top_k", "outcome": "pass"}
    assert RuleResult.trusted(**partial).__dict__ == RuleResult.model_construct(**partial).__dict__
    assert RuleResult.trusted(**partial).model_fields_set == {"rule_id", "outcome"}
    one = Decision.trusted(decision_id="a")
    two = Decision.trusted(decision_id="b")
    assert list(one.__dict__) == list(Decision.model_construct(decision_id="a").__dict__)
    made = [name for name, value in one.__dict__.items() if isinstance(value, (list, dict))]
    assert made  # reasons, candidates, rules, masked: default factories
    for name in made:
        assert one.__dict__[name] is not two.__dict__[name], name


def test_trusted_refuses_names_that_are_not_fields():
    with pytest.raises(TypeError, match="confidnce"):
        Candidate.trusted(action="ask_name", confidnce=0.5)
    # model_construct would have dropped it silently:
    assert "confidnce" not in Candidate.model_construct(action="ask_name", confidnce=0.5).__dict__


def test_trusted_records_are_still_frozen():
    suggestion = Suggestion.trusted(suggestion_id="s", action="ask_name")
    with pytest.raises(ValidationError, match="frozen"):
        suggestion.action = "query"
