"""Run inputs through the job's steps and check the invariants the fuzzers hold them to.

- ``check_parsed``: one raw record through ``operators.parse.parse_record``: an
  ``Envelope`` of the stream's record types (keys checked) or a dead letter
  with a known reason other than ``internal_error``, contract-valid, at the
  record's source position, with no planted personal data in clear.
- ``EmbeddedJob``: the coaching dataflow in embedded mode, in this process,
  as a job runs it (``flows.coaching.get_flow`` around ``JobResources``
  opened once; a fresh flow per input file); ``check_run`` then holds every
  output to its contract and every input line to exactly one decision, one
  dead letter or (feedback) one click acceptance, with no ``internal_error``
  and no planted personal data in any output or log line.

Both return the problems they found (empty: the invariants hold) and count
the examples they were given (``tests.fuzz.budget.tried``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from bytewax.testing import run_main

from coachflow.config import Settings
from coachflow.runtime import JobResources
from flows.coaching import get_flow
from operators.envelope import Envelope, Origin, RawRecord
from operators.parse import ParseLimits, expected_key, parse_record
from operators.policy import PolicyStore
from operators.publish import serialize
from schemas import DeadLetter, Feedback
from schemas.outputs import DeadLetterReason
from schemas.topics import INPUTS, OUTPUTS
from tests.adversarial import PII, _normal, _strings, leaks
from tests.fuzz import budget

REASONS = frozenset(get_args(DeadLetterReason)) - {"internal_error"}
RECORD_TYPES = {spec.kind: spec.records for spec in INPUTS}
RECORD_TYPES["any"] = tuple(t for spec in INPUTS for t in spec.records)
OUTPUT_MODELS = {spec.kind: spec.schema for spec in OUTPUTS}


def planted(inputs: list[bytes]) -> set[str]:
    """The personal data planted in ``inputs``: each ``PII`` value whose whole surface form (its
    context words too: a bare "7391" is no PIN) is in an input's text or in one of its JSON strings."""
    texts = []
    for value in inputs:
        text = value.decode("utf-8", "replace")
        texts.append(text)
        with contextlib.suppress(ValueError, RecursionError):
            texts += list(_strings(json.loads(text)))
    haystack = _normal("\n".join(texts))
    return {needle for surface, needle in PII if _normal(surface) in haystack}


def leaked(inputs: list[bytes], outputs: list[str]) -> list[str]:
    """Planted personal data (``planted``) that is in ``outputs`` in clear."""
    return sorted(set(leaks(outputs)) & planted(inputs))


def check_parsed(raw: RawRecord, limits: ParseLimits) -> list[str]:
    """Problems with what ``parse_record`` made of ``raw`` (empty: the invariants hold)."""
    budget.tried("parse")
    result = parse_record(raw, limits, 1_772_460_000_000_000_000)
    problems: list[str] = []
    if isinstance(result, DeadLetter):
        if result.reason not in REASONS:
            problems.append(f"dead letter reason {result.reason}: {result.detail}")
        kind, _, value = serialize(result)
        again = DeadLetter.model_validate_json(value)  # what a consumer of the dlq topic reads
        if again.source != raw.origin.ref():
            problems.append(f"dead letter at {again.source}, the record came from {raw.origin}")
        payload = raw.value or b""
        digest = hashlib.sha256(payload).hexdigest()
        if again.payload_bytes != raw.payload_bytes or again.payload_sha256 != digest:
            problems.append("dead letter's size or digest is not the record's")
        found = leaked([raw.value or b"", raw.key or b""], [value.decode()])
        if found:
            problems.append(f"personal data in clear in the dead letter: {found} ({again.reason})")
        return problems
    if not isinstance(result, Envelope):
        return [f"parse_record returned {type(result).__name__}"]
    if not isinstance(result.record, RECORD_TYPES[raw.stream]):
        problems.append(f"a {type(result.record).__name__} accepted on the {raw.stream} stream")
    if limits.check_keys and raw.stream != "any":
        wanted = expected_key(result.record, raw.stream, limits.key_by)
        if raw.key is None or (wanted is not None and raw.key != wanted.encode()):
            problems.append(f"key {raw.key!r} accepted for a record keyed {wanted!r}")
    found = leaked([raw.value or b""], [result.record.model_dump_json()])
    if found:
        problems.append(f"personal data in clear in the accepted record: {found}")
    return problems


# -- the embedded job ----------------------------------------------------------------------------------
@dataclass
class Outputs:
    """What one embedded run wrote: each output kind's lines, and the log lines."""

    lines: dict[str, list[str]]
    logs: list[str] = field(default_factory=list)

    def records(self, kind: str) -> list:
        return [OUTPUT_MODELS[kind].model_validate_json(line) for line in self.lines.get(kind, [])]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class EmbeddedJob:
    """The coaching job in embedded mode, in this process: resources opened once, a fresh flow per run."""

    def __init__(self, workdir: Path, **settings) -> None:
        self.workdir = workdir
        defaults = dict(lineage="none", quality_monitor=False, print_suggestions=False, metrics_port=0,
                        context_wait_ms=50, output_dir=workdir / "opened")
        self.settings = Settings(**{**defaults, **settings})
        self.resources = JobResources(self.settings).open()

    def close(self) -> None:
        self.resources.close()

    def run(self, lines: list[bytes], policy: Path | None = None) -> Outputs:
        """Write ``lines`` (newlines inside a line become spaces) to a JSONL file and run the flow on it."""
        budget.tried("flow")
        run_dir = Path(tempfile.mkdtemp(dir=self.workdir))
        try:
            source = run_dir / "input.jsonl"
            source.write_bytes(b"".join(line.replace(b"\n", b" ") + b"\n" for line in lines))
            out = run_dir / "out"
            out.mkdir()
            settings = self.settings.model_copy(update={"input": source, "output_dir": out})
            resources = self.resources
            if policy is not None:
                resources = copy.copy(resources)
                resources.policies = PolicyStore(policy)
            capture = _Capture()
            logger = logging.getLogger("coachflow")
            logger.addHandler(capture)
            try:
                run_main(get_flow(settings, resources))
            finally:
                logger.removeHandler(capture)
            # JSONL lines end at "\n" only: str.splitlines would also split at U+2028, U+0085 ... in strings.
            written = {path.stem: [line.decode("utf-8") for line in path.read_bytes().split(b"\n") if line]
                       for path in out.glob("*.jsonl")}
            return Outputs(written, capture.lines)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)


def input_lines(lines: list[bytes]) -> dict[int, bytes]:
    """Line number -> record, as the JSONL source reads ``EmbeddedJob.run``'s file (blank lines hold none)."""
    flat = (line.replace(b"\n", b" ") for line in lines)
    return {n: line for n, line in enumerate(flat, 1) if line.strip()}


def check_run(lines: list[bytes], out: Outputs) -> list[str]:
    """Problems with one embedded run on ``lines`` (empty: the invariants hold)."""
    problems: list[str] = []
    records = {}
    for kind in OUTPUT_MODELS:
        try:
            records[kind] = out.records(kind)
        except ValueError as error:
            problems.append(f"a {kind} record breaks its contract: {error}")
            records[kind] = []
    inputs = input_lines(lines)
    decided = Counter(d.input.source.line for d in records["decisions"])
    dead = Counter(d.source.line for d in records["dlq"])
    internal = [f"{d.step}: {d.detail}" for d in records["dlq"] if d.reason == "internal_error"]
    if internal:
        problems.append(f"a step raised: {internal[:3]}")
    unknown = (set(decided) | set(dead)) - set(inputs)
    if unknown:
        problems.append(f"outputs for lines that hold no record: {sorted(unknown)[:5]}")
    once = {n for n in inputs if decided[n] + dead[n] == 1}
    many = {n: (decided[n], dead[n]) for n in inputs if decided[n] + dead[n] > 1}
    if many:
        problems.append(f"lines with more than one decision or dead letter: {dict(list(many.items())[:5])}")
    # Feedback lines with neither: each must be one click acceptance (matched by feedback id).
    clicks = Counter(a.feedback_id for a in records["acceptance"] if a.mode == "click")
    rest = Counter()
    for n, line in inputs.items():
        if n in once or n in many:
            continue
        record = RawRecord(value=line, key=None, origin=Origin(file="input.jsonl", line=n), stream="any")
        parsed = parse_record(record, ParseLimits(check_keys=False), 1)
        if isinstance(parsed, Envelope) and isinstance(parsed.record, Feedback):
            rest[parsed.record.feedback_id] += 1
        else:
            problems.append(f"line {n} has no decision and no dead letter: {line[:120]!r}")
    if rest != clicks:
        problems.append(f"click acceptances {dict(clicks)} are not the undecided feedback lines {dict(rest)}")
    ids = Counter(d.decision_id for d in records["decisions"])
    if any(n > 1 for n in ids.values()):
        problems.append("two decisions share an id")
    found = leaked(lines, [line for rows in out.lines.values() for line in rows] + out.logs)
    if found:
        problems.append(f"personal data in clear in the outputs or logs: {found}")
    return problems
