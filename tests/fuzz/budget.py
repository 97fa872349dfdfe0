"""Fuzzing budgets: Hypothesis profiles, examples counted per target, and what a campaign found.

``COACH_FUZZ_PROFILE`` picks the profile (loaded when this module is imported):

- ``ci`` (the default, what ``make test`` runs): ``derandomize=True``, so the
  examples are a function of each test's code and the same on every run; no
  example database; each test's base budget (a few thousand examples in all).
- ``campaign`` (``make fuzz``): random examples, each test's budget times
  ``COACH_FUZZ_SCALE`` (default 40; ``COACH_FUZZ_JOB_SCALE``, default 4, for the
  tests that run the embedded job on each example: about 74,000 in all); Hypothesis's
  example database in ``tests/fuzz/corpus/.hypothesis`` (not committed), so
  the next campaign on this checkout replays its failures first. The smallest
  failing input per kind of failure is written to ``tests/fuzz/corpus/found/``
  as a corpus file; commit it once the code is fixed and every run replays it
  (``tests/fuzz/test_corpus.py``).

``tried(target)`` counts the examples each target was given; the fuzz
conftest prints the counts and the time at the end of the run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

PROFILE = os.environ.get("COACH_FUZZ_PROFILE", "ci")
CORPUS = Path(__file__).resolve().parent / "corpus"
FOUND = CORPUS / "found"
_RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
            HealthCheck.large_base_example]

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=False,
                          suppress_health_check=_RELAXED)
settings.register_profile("campaign", database=DirectoryBasedExampleDatabase(str(CORPUS / ".hypothesis")),
                          deadline=None, print_blob=True, suppress_health_check=_RELAXED)
if PROFILE not in ("ci", "campaign"):
    raise ValueError(f"COACH_FUZZ_PROFILE={PROFILE!r}: use ci or campaign")
settings.load_profile(PROFILE)

SCALE = int(os.environ.get("COACH_FUZZ_SCALE", "40" if PROFILE == "campaign" else "1"))
#: Tests that run the whole embedded job per example (about a second each) scale less, so that a
#: campaign fits in well under an hour on two cores.
JOB_SCALE = int(os.environ.get("COACH_FUZZ_JOB_SCALE", "4" if PROFILE == "campaign" else "1"))
COUNTS: Counter[str] = Counter()
STARTED = time.monotonic()
_found: dict[tuple[str, str], dict] = {}


def examples(base: int, runs_the_job: bool = False) -> settings:
    """A test's Hypothesis settings: ``base`` examples in CI, times ``COACH_FUZZ_SCALE`` in a campaign
    (``COACH_FUZZ_JOB_SCALE`` for a test that runs the embedded job on each example)."""
    return settings(max_examples=max(1, base * (JOB_SCALE if runs_the_job else SCALE)))


def tried(target: str) -> None:
    COUNTS[target] += 1


def b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


def unb64(value: str | None) -> bytes | None:
    return None if value is None else base64.b64decode(value)


@contextmanager
def keep_if_failing(case: dict) -> Iterator[None]:
    """In a campaign, remember ``case`` (a corpus file's content) if the block fails: per kind of
    failure (target, exception, first words of its message), the smallest case is kept."""
    try:
        yield
    except Exception as error:
        if PROFILE == "campaign":
            kind = (case["target"], f"{type(error).__name__}: {str(error).split(':', 1)[0][:80]}")
            size = len(json.dumps(case))
            if kind not in _found or size < len(json.dumps(_found[kind])):
                _found[kind] = {**case, "found": kind[1]}
        raise


def write_found() -> list[Path]:
    """Write what this campaign found to ``tests/fuzz/corpus/found/``: a corpus file per kind of failure."""
    written = []
    for case in _found.values():
        text = json.dumps(case, indent=1, sort_keys=True) + "\n"
        FOUND.mkdir(parents=True, exist_ok=True)
        path = FOUND / f"{case['target']}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
        path.write_text(text)
        written.append(path)
    return written
