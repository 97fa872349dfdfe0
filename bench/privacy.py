"""What masking costs and what it changes in text that is not personal data.

    .venv/bin/python bench/privacy.py [--dialogues ../shared/data/star/dialogues.jsonl.gz]
        [--baseline main] [--job-dialogues 200] [--samples 30] [--json out.json]

- cost: µs per STAR customer turn for the policy's redactor at parse (the fast kinds the
  default policy lists), ``FAST`` (every fast kind), ``SHAPED`` and ``STRICT`` (where text
  leaves the job); with ``--baseline REV``, also ``operators/pii.py`` of that revision, so
  the parse step's added cost is measured against it.
- the job's added cost per record: the parse-time difference per input record, and
  ``operators.privacy.scrub`` over every record one embedded run published (its cache
  cleared first), per published and per input record.
- false positives: the share of STAR agent turns, approved reply templates and templates
  filled with every knowledge-base item of the dialogues that ``STRICT`` or ``SHAPED``
  changes (none of them holds personal data of the caller: any change is a false positive
  or a knowledge-base value), and the share of customer turns changed per kind, with a
  sample of each kind's changes to read; what the uncued names rule of dead letters adds.

Prints a summary and writes everything to ``--json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import star  # noqa: E402
from models.templates import TemplateBook, fill  # noqa: E402
from operators import privacy  # noqa: E402
from operators.pii import FAST, STRICT_KINDS, Redactor  # noqa: E402
from operators.policy import DEFAULT_POLICY, load_policy  # noqa: E402
from operators.records import SHAPED, STRICT  # noqa: E402
from schemas import Acceptance, Alert, ConversationSummary, DeadLetter, Decision, Suggestion  # noqa: E402

#: ``STRICT`` without its uncued rules (names from a list, streets without a number).
CUED = Redactor(frozenset(STRICT_KINDS))
_MARKER = re.compile(r"\[([A-Z_]+)\]")
_TYPES = {"suggestions": Suggestion, "alerts": Alert, "decisions": Decision, "dlq": DeadLetter,
          "summaries": ConversationSummary, "acceptance": Acceptance}


def texts(dialogues: Path) -> dict[str, list[str]]:
    """Customer turns, agent turns, templates and templates filled from knowledge-base items."""
    customer, agent, items = [], [], []
    for dialogue in star.read_dialogues(dialogues):
        for _, record in star.map_dialogue(dialogue).records:
            if record.get("type") == "turn":
                (customer if record["speaker"] == "customer" else agent).append(record["text"])
            elif record.get("type") == "kb_result" and record.get("item"):
                items.append((record.get("api"), record["item"]))  # STAR's API names are its task names
    book = TemplateBook.from_star(Path(dialogues).parent / "tasks")
    templates = sorted({t for replies in book.by_task.values() for t in replies.values()})
    filled = set()
    for task, item in items:
        for template in book.by_task.get(task or "", {}).values():
            if "{" in template and (text := fill(template, item)) != fill(template, {}):
                filled.add(text)
    return {"customer": customer, "agent": agent, "templates": templates, "filled": sorted(filled)}


def per_text_us(redactors: dict, corpus: list[str], rounds: int = 5) -> dict[str, float]:
    """µs per text of each redactor: the best of ``rounds``, the redactors taking turns within each
    round so that a slow spell of this shared machine does not fall on one of them only."""
    best = dict.fromkeys(redactors, float("inf"))
    for _ in range(rounds):
        for name, redact in redactors.items():
            started = time.perf_counter()
            for text in corpus:
                redact(text)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: round(seconds / len(corpus) * 1e6, 2) for name, seconds in best.items()}


def baseline_redactor(rev: str, kinds, min_digits: int):
    """``operators/pii.py`` at ``rev`` (git), loaded as a module of its own."""
    source = subprocess.run(["git", "show", f"{rev}:operators/pii.py"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "pii_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("pii_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["pii_baseline"] = module
    spec.loader.exec_module(module)
    known = set(getattr(module, "STRICT_KINDS", None) or module.KINDS)  # KINDS: before the strict kinds
    return module.Redactor(frozenset(k for k in kinds if k in known), min_digits)


def uncued_names(corpus: list[str], samples: int) -> dict:
    """Texts where ``STRICT`` masks more names than it would without its uncued rule (a name from
    ``operators.names`` with no cue), with examples: in agent turns and templates, false positives
    or names the agent said; in customer turns, names given without a cue."""
    hits = []
    for text in corpus:
        clean, found = STRICT.redact(text)
        if found.count("person") > CUED.redact(text)[1].count("person"):
            hits.append((text, clean))
    return {"changed": len(hits), "of": len(corpus), "share": round(len(hits) / max(1, len(corpus)), 5),
            "examples": random.Random(7).sample(hits, min(samples, len(hits)))}


def changes(redactor, corpus: list[str]) -> tuple[Counter, list[tuple[str, str]]]:
    kinds: Counter = Counter()
    changed = []
    for text in corpus:
        clean, found = redactor.redact(text)
        if clean != text:
            changed.append((text, clean))
            kinds.update(set(found))
    return kinds, changed


#: 64 KiB payloads (the default payload limit) made of what costs the passes most: (unit, tail).
#: The e-mail ones backtracked quadratically before their repeats were bounded (82 s for the first).
HOSTILE = {
    "dotted local part, @": ("a.", "@" + "b" * 2000),
    "dashed local part, @": ("a-", "@b.com"),
    "underscored local part, @": ("a_", "@b.com"),
    "spoken at and dot": ("a at b dot ", "com"),
    "spelled letters, @": ("w a t s o n ", "@b.com"),
    "spoken digits": ("nine nine nine nine ", ""),
    "mixed digits": ("four 1 one, ", ""),
    "IBAN-shaped groups": ("GB82 ", ""),
    "IPv4-shaped groups": ("1.1.", ""),
    "IPv6-shaped groups": ("1:1:", "::"),
    "dates": ("12/03/", ""),
    "name cues": ("my name is ", ""),
    "capitalised names": ("Katrina Miller ", ""),
    "id cues": ("passport number ", "1"),
    "credential cues": ("password is ", ""),
    "address cues": ("I live at ", ""),
    "plain words": ("Hello World ", ""),
}


def hostile() -> dict[str, float]:
    """Milliseconds for the slowest of ``STRICT``, ``SHAPED`` and ``FAST`` on each hostile text."""
    out = {}
    for name, (unit, tail) in HOSTILE.items():
        size = 65_536 - len(tail)
        text = (unit * (size // len(unit) + 1))[:size] + tail
        slowest = 0.0
        for redactor in (STRICT, SHAPED, FAST):
            started = time.perf_counter()
            redactor.redact(text)
            slowest = max(slowest, time.perf_counter() - started)
        out[name] = round(slowest * 1e3, 1)
    return out


def job_cost(dialogues: Path, n: int) -> dict:
    """Run the embedded job on ``n`` dev dialogues; time ``scrub`` over what it published."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.jsonl"
        subprocess.run([sys.executable, "-m", "coachflow.cli", "replay", str(dialogues), "--limit", str(n),
                        "--split", "dev", "--out", str(source)], cwd=ROOT, check=True, capture_output=True)
        inputs = sum(1 for line in source.read_text().splitlines() if line.strip())
        env = {**os.environ, "COACH_INPUT": str(source), "COACH_OUTPUT_DIR": str(Path(tmp) / "out"),
               "COACH_PRINT_SUGGESTIONS": "false", "COACH_LINEAGE": "none", "COACH_QUALITY_MONITOR": "false"}
        env.pop("COACH_BROKERS", None)
        subprocess.run([sys.executable, "-m", "bytewax.run", "flows.coaching:flow"], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        records = []
        for kind, cls in _TYPES.items():
            path = Path(tmp) / "out" / f"{kind}.jsonl"
            if path.exists():
                records += [cls.model_validate_json(line) for line in path.read_text().splitlines() if line]
    privacy._shaped.cache_clear()
    started = time.perf_counter()
    for record in records:
        privacy.scrub(record)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    for record in records:
        privacy.scrub(record)
    warm = time.perf_counter() - started
    return {"dialogues": n, "inputs": inputs, "published": len(records),
            "scrub_us_per_published_cold": round(cold / len(records) * 1e6, 2),
            "scrub_us_per_input_cold": round(cold / inputs * 1e6, 2),
            "scrub_us_per_published_warm": round(warm / len(records) * 1e6, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogues", type=Path, default=ROOT.parent / "shared/data/star/dialogues.jsonl.gz")
    parser.add_argument("--baseline", default=None, help="A git revision whose operators/pii.py to compare.")
    parser.add_argument("--job-dialogues", type=int, default=200)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    corpus = texts(args.dialogues)
    customer = corpus["customer"]
    policy = load_policy(DEFAULT_POLICY)
    redactors = {"policy": policy.redactor.redact, "fast": FAST.redact, "shaped": SHAPED.redact,
                 "strict": STRICT.redact}
    if args.baseline:
        base = baseline_redactor(args.baseline, policy.redactor.kinds, policy.redactor.min_digits)
        redactors["baseline_policy"] = base.redact
    cost = per_text_us(redactors, customer)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        "texts": {k: len(v) for k, v in corpus.items()},
        "us_per_customer_turn": cost,
    }
    if args.baseline:
        result["parse_added_us_per_turn"] = round(cost["policy"] - cost["baseline_policy"], 2)
    false_positives = {}
    for name in ("agent", "templates", "filled"):
        for label, redactor in (("strict", STRICT), ("shaped", SHAPED)):
            kinds, changed = changes(redactor, corpus[name])
            false_positives[f"{name}/{label}"] = {
                "changed": len(changed), "of": len(corpus[name]),
                "share": round(len(changed) / max(1, len(corpus[name])), 5), "kinds": dict(kinds),
                "examples": changed[: args.samples],
            }
    result["not_personal_changed"] = false_positives
    result["uncued_names"] = {name: uncued_names(corpus[name], args.samples)
                              for name in ("agent", "templates", "filled", "customer")}
    kinds, changed = changes(STRICT, customer)
    policy_kinds, policy_changed = changes(policy.redactor, customer)
    samples = {}
    for kind in STRICT_KINDS:  # a seed of its own per kind: a kind added leaves the others' samples
        hits = [(t, c) for t, c in changed if f"[{kind.upper()}]" in c]
        sample = random.Random(7).sample(hits, min(args.samples, len(hits)))
        samples[kind] = {"turns": len(hits), "sample": sample}
    result["customer_turns"] = {
        "of": len(customer), "strict_changed": len(changed), "policy_changed": len(policy_changed),
        "strict_kinds": dict(kinds), "policy_kinds": dict(policy_kinds), "per_kind": samples,
    }
    result["slowest_ms_per_64kib_hostile"] = hostile()
    if args.job_dialogues:
        job = job_cost(args.dialogues, args.job_dialogues)
        result["job"] = job
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    summary = {k: v for k, v in result.items()
               if k not in ("not_personal_changed", "customer_turns", "uncued_names")}
    summary["uncued_names"] = {k: f"{v['changed']}/{v['of']}" for k, v in result["uncued_names"].items()}
    summary["not_personal_changed"] = {k: f"{v['changed']}/{v['of']} {v['kinds']}"
                                       for k, v in false_positives.items()}
    summary["customer_turns"] = {k: v for k, v in result["customer_turns"].items() if k != "per_kind"}
    summary["customer_turns"]["per_kind"] = {k: v["turns"] for k, v in samples.items()}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
