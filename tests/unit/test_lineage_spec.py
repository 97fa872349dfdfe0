"""The job's OpenLineage events against the official spec (2-0-2) and its facet schemas, resolved locally."""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path

import attr
import pytest
from openlineage.client.event_v2 import RunState
from openlineage.client.serde import Serde

from coachflow.cli import main
from coachflow.config import Settings
from lineage import CoachflowRunFacet, Lineage, LineageConfig
from lineage.job import job_lineage
from lineage.validate import FACETS_DIR, SpecValidator
from models import registry
from operators.policy import load_policy
from operators.quality import CONTEXT_SUITE, EVENTS_SUITE, gx_validate, load_suites, quality_row
from tests.helpers import T0, context, envelope, event

SPEC = SpecValidator()
RECEIVED_NS = int(T0.timestamp() * 1e9)


def job(settings: Settings, quality: list[dict]) -> Lineage:
    """The job's ``Lineage`` for ``settings`` (no transport), with the model and policy a run uses."""
    entry = registry.verify(settings.model)
    policy = load_policy(settings.policy)
    lineage = job_lineage(
        settings, LineageConfig(transport="none"),
        model={"name": entry["name"], "version": entry["version"], "sha256": entry["sha256"]},
        policy={"name": policy.name, "version": policy.version, "hash": policy.hash},
        suites=[suite.label for suite in load_suites().values()],
    )
    for summary in quality:
        lineage.update_quality(summary)
    return lineage


def emitted(lineage: Lineage, state: RunState, error: BaseException | None = None) -> dict:
    """The event as a transport sends it."""
    return json.loads(Serde.to_json(lineage.event(state, error)))


def crash() -> BaseException:
    try:
        raise RuntimeError("the broker went away while sending jane.doe@example.com's 4111 1111 1111 1111")
    except RuntimeError as exc:
        return exc


@pytest.fixture(scope="module")
def gx_results(gx_ready) -> list[dict]:
    """Real GX results for both suites; the empty turn fails a warning."""
    events = [event("conversation_start", seq=0), event(seq=1, t=1), event(seq=2, t=2, text="")]
    rows = [quality_row(envelope(r, RECEIVED_NS)) for r in events]
    contexts = [quality_row(envelope(context(), RECEIVED_NS))]
    return [gx_validate(EVENTS_SUITE, rows), gx_validate(CONTEXT_SUITE, contexts)]


@pytest.mark.parametrize("settings", [Settings(), Settings(brokers="127.0.0.1:9292")],
                         ids=["embedded", "kafka"])
def test_every_event_of_a_run_conforms(settings, gx_results):
    lineage = job(settings, gx_results)
    for state in (RunState.START, RunState.RUNNING, RunState.COMPLETE, RunState.ABORT):
        assert SPEC.problems(emitted(lineage, state)) == [], state
    failed = emitted(lineage, RunState.FAIL, crash())
    assert SPEC.problems(failed) == []
    # What was checked: every facet kind the job emits.
    assert set(failed["run"]["facets"]) >= {"coachflow", "processing_engine", "errorMessage"}
    error = failed["run"]["facets"]["errorMessage"]
    for said in (error["message"], error["stackTrace"]):
        assert "the broker went away" in said and "jane.doe" not in said and "4111" not in said
    assert set(failed["job"]["facets"]) == {"jobType", "documentation"}
    events_input = failed["inputs"][0]
    assert set(events_input["inputFacets"]) == {"dataQualityAssertions", "dataQualityMetrics"}
    assert "schema" in events_input["facets"]
    quality = events_input["inputFacets"]["dataQualityAssertions"]
    assertions = {a["assertion"]: a for a in quality["assertions"]}
    assert assertions["events.text_length.min"]["success"] is False
    assert assertions["events.text_length.min"]["severity"] == "warning"
    assert sum("columnLineage" in o["facets"] for o in failed["outputs"]) == 2


def test_kafka_datasets_follow_the_naming_spec(gx_results):
    failed = emitted(job(Settings(brokers="127.0.0.1:9292"), gx_results), RunState.FAIL, crash())
    assert {d["namespace"] for d in failed["inputs"] + failed["outputs"]} == {"kafka://127.0.0.1:9292"}


def mutate(event: dict, path: str, value: object = KeyError) -> dict:
    """A copy of ``event`` with the value at a dotted ``path`` replaced (KeyError: deleted)."""
    out = copy.deepcopy(event)
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is KeyError:
        del node[int(last) if isinstance(node, list) else last]
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return out


def outputs_with_lineage(event: dict) -> int:
    return next(i for i, o in enumerate(event["outputs"]) if "columnLineage" in o["facets"])


@pytest.mark.parametrize(("path", "value", "finding"), [
    ("eventTime", KeyError, "'eventTime' is a required property"),
    ("eventTime", "yesterday", "is not a 'date-time'"),
    ("producer", "not a uri", "is not a 'uri'"),
    ("run.runId", "run-1", "is not a 'uuid'"),
    ("eventType", "DONE", "is not one of"),
    ("schemaURL", "https://openlineage.io/spec/2-0-3/OpenLineage.json#/$defs/RunEvent", "not found locally"),
    ("inputs.0.name", KeyError, "'name' is a required property"),
    ("run.facets.processing_engine.version", KeyError, "'version' is a required property"),
    ("run.facets.errorMessage.programmingLanguage", KeyError, "'programmingLanguage' is a required property"),
    ("run.facets.coachflow._producer", KeyError, "'_producer' is a required property"),
    ("run.facets.coachflow.model.sha256", "abc", "does not match"),
    ("run.facets.coachflow.extra", 1, "Additional properties are not allowed"),
    ("run.facets.coachflow._schemaURL", "https://coachflow.dev/lineage/facets/CoachflowRunFacet.json",
     "does not point at a facet definition"),
    ("job.facets.jobType.processingType", 3, "is not of type 'string'"),
    ("inputs.0.inputFacets.dataQualityAssertions.assertions.0.success", "yes", "is not of type 'boolean'"),
    ("inputs.0.inputFacets.dataQualityMetrics.rowCount", "many", "is not of type 'integer'"),
    ("inputs.0.facets.schema.fields.0.name", KeyError, "'name' is a required property"),
    ("outputs.{lineage}.facets.columnLineage.fields.action.inputFields.0.field", KeyError,
     "'field' is a required property"),
    ("run.facets.nominalTime", {"nominalStartTime": "2026-01-01T00:00:00Z"}, "no _schemaURL"),
])
def test_the_checks_find_what_the_spec_rejects(gx_results, path, value, finding):
    good = emitted(job(Settings(), gx_results), RunState.FAIL, crash())
    bad = mutate(good, path.format(lineage=outputs_with_lineage(good)), value)
    problems = SPEC.problems(bad)
    assert any(finding in p for p in problems), problems


def test_a_facet_must_sit_where_its_kind_belongs_under_the_key_its_schema_names(gx_results):
    good = emitted(job(Settings(), gx_results), RunState.COMPLETE)
    misplaced = copy.deepcopy(good)
    misplaced["inputs"][0]["facets"]["dataQualityAssertions"] = misplaced["inputs"][0]["inputFacets"].pop(
        "dataQualityAssertions")
    found = SPEC.problems(misplaced)
    assert any("extends InputDatasetFacet, but DatasetFacet belongs here" in p for p in found), found
    renamed = copy.deepcopy(good)
    renamed["run"]["facets"]["engine"] = renamed["run"]["facets"].pop("processing_engine")
    assert any("its schema names this facet processing_engine" in p for p in SPEC.problems(renamed))


@pytest.fixture
def offline(monkeypatch):
    """Any network connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_an_unknown_remote_schema_is_a_problem_never_a_fetch(offline, tmp_path, gx_results):
    good = emitted(job(Settings(), gx_results), RunState.COMPLETE)
    unknown = mutate(good, "run.facets.processing_engine._schemaURL",
                     "https://example.com/spec/facets/1-0-0/EngineRunFacet.json#/$defs/EngineRunFacet")
    assert any("schema not found locally" in p for p in SPEC.problems(unknown))

    # A local facet schema that extends an unknown remote one: its facets fail, they do not pass unchecked.
    (tmp_path / "Remote.json").write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.com/facets/RemoteRunFacet.json",
        "$defs": {"RemoteRunFacet": {"allOf": [
            {"$ref": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunFacet"},
            {"$ref": "https://example.com/spec/Base.json#/$defs/Base"},
        ]}},
        "properties": {"remote": {"$ref": "#/$defs/RemoteRunFacet"}},
    }))
    spec = SpecValidator(extra=[FACETS_DIR, tmp_path])
    remote = mutate(good, "run.facets.remote", {
        "_producer": "https://coachflow.dev/lineage",
        "_schemaURL": "https://example.com/facets/RemoteRunFacet.json#/$defs/RemoteRunFacet",
    })
    assert spec.problems(good) == []
    assert any("run.facets.remote: schema not found locally" in p and "example.com/spec/Base.json" in p
               for p in spec.problems(remote)), spec.problems(remote)

    with pytest.raises(FileNotFoundError):
        SpecValidator(tmp_path)


def test_the_coachflow_facet_schema_is_what_the_facet_emits():
    path = FACETS_DIR / "CoachflowRunFacet.json"
    schema = json.loads(path.read_text())
    assert CoachflowRunFacet._get_schema() == schema["$id"] + "#/$defs/CoachflowRunFacet"
    own = schema["$defs"]["CoachflowRunFacet"]["allOf"][1]
    fields = {f.name for f in attr.fields(CoachflowRunFacet) if not f.name.startswith("_")}
    assert {name for name in own["properties"] if not name.startswith("_")} == fields
    assert set(own["required"]) == fields
    # Shipped with the package (setuptools package data).
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert 'lineage = ["facets/*.json"]' in pyproject


def test_coach_lineage_validate_names_each_bad_line(tmp_path, capsys, gx_results):
    lineage = job(Settings(), gx_results)
    good = [emitted(lineage, RunState.START), emitted(lineage, RunState.COMPLETE)]
    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(json.dumps(e) + "\n" for e in good))
    assert main(["lineage", "validate", str(clean)]) == 0
    assert "2 events, every one conforms" in capsys.readouterr().err

    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text(json.dumps(good[0]) + "\n" + json.dumps(mutate(good[1], "run.runId", "x")) + "\n{oops\n")
    assert main(["lineage", "validate", str(dirty)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("line 2: event: run/runId: 'x' is not a 'uuid'")
    assert out[-1].startswith("line 3: not JSON")


def test_a_validator_that_cannot_check_the_spec_formats_refuses_to_start(monkeypatch):
    import lineage.validate as validate

    checker = validate.FormatChecker
    monkeypatch.setattr(validate, "FormatChecker", lambda: checker(["uuid"]))  # as without rfc3339-validator
    with pytest.raises(RuntimeError, match="date-time"):
        SpecValidator()
