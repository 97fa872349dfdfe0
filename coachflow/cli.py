"""``coach``: the command-line tool around the coaching dataflow.

    coach replay PATH --out FILE | --brokers HOST:PORT   STAR dialogues as live traffic
    coach train                                          train the ONNX model on STAR, register it
    coach eval --dialogues PATH                          evaluate the serving model, print JSON
    coach lineage explain SUGGESTION_ID                  why an agent saw a suggestion
    coach lineage validate [FILE] [--spec DIR]           lineage events against the OpenLineage spec
    coach bench [--rate N --duration S ...]              throughput and latency on a real broker
    coach report [DIR] [--brokers HOST:PORT] [--json]    acceptance, alert, suppression rates; PNG chart
    coach console --brokers HOST:PORT                    the reference agent console (http://127.0.0.1:8765/)
    coach console token --agent ID                       a development token: the console's address with it
    coach baseline train                                 retrain the baseline scorer
    coach schemas export | check                         JSON Schemas of the topic contracts
    coach topics create --brokers HOST:PORT              create the job's topics
    coach acls show | apply | revoke                     the principals' Kafka ACLs (docs/security.md)
    coach knowledge index | search | eval | train ...    knowledge assist: index, search, evaluate, train

The job itself runs with ``python -m bytewax.run flows.coaching:flow``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from models import star
from schemas.topics import topic


def _console(args: argparse.Namespace) -> int:
    from console.server import run

    return run(args)


def _acls(args: argparse.Namespace) -> int:
    from coachflow.security import main_acls

    return main_acls(args)


def _report(args: argparse.Namespace) -> int:
    from coachflow.report import main_report

    return main_report(args)


def _rates(text: str) -> tuple[float, ...]:
    """``--rate``: one rate or several, comma-separated, each above zero."""
    try:
        rates = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate or a comma-separated list of rates: {text!r}") from None
    if min(rates) <= 0:
        raise argparse.ArgumentTypeError(f"rates are records per second above zero: {text!r}")
    return rates


def _bench(args: argparse.Namespace) -> int:
    from coachflow.bench import main_bench

    return main_bench(args)


def _star_dir() -> Path:
    return Path(os.environ.get("COACH_STAR_DIR", star.DEFAULT_STAR_DIR))


def _replay(args: argparse.Namespace) -> int:
    from coachflow.replay import main_replay

    if not args.out and not args.brokers:
        print("coach replay: give --out FILE or --brokers HOST:PORT", file=sys.stderr)
        return 2
    return main_replay(args)


def _baseline_train(args: argparse.Namespace) -> int:
    from models import baseline, registry

    entry = baseline.train(args.star, log=lambda msg: print(msg, file=sys.stderr))
    registry.register(entry)
    print(f"registered {entry['name']} {entry['version']} sha256 {entry['sha256']}", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from models import registry
    from models.card import write_card
    from models.train import MODEL_DIR, TrainConfig, train

    config = TrainConfig()
    overrides = {k: v for k, v in {
        "version": args.version, "members": args.members, "epochs": args.epochs,
        "hidden": args.hidden, "limit": args.limit, "seed": args.seed,
    }.items() if v is not None}
    config = replace(config, **overrides)
    out = args.out or MODEL_DIR
    entry = train(args.star, config, out, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.out is None:
        registry.register(entry)
        write_card(entry, out / "MODEL_CARD.md")
        print(f"registered {entry['name']} {entry['version']} sha256 {entry['sha256']}", file=sys.stderr)
    else:
        import json

        (out / "entry.json").write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
        print(f"wrote {out} (not registered: --out given)", file=sys.stderr)
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json

    from coachflow.config import Settings
    from models.evaluate import evaluate_dialogues
    from models.registry import load_scorer

    model = args.model or Settings().model
    scorer = load_scorer(model)
    if args.record:
        _check_recordable(args, scorer.registry_entry)
    dialogues = star.select(args.dialogues, split=args.split, limit=args.limit)
    result = evaluate_dialogues(scorer, dialogues)
    if args.record:
        _record(scorer.registry_entry, Path(model), result)
    result = {"model": scorer.version, "dialogues": str(args.dialogues), "split": args.split, **result}
    print(json.dumps(result, indent=None if args.compact else 2))
    return 0


def _check_recordable(args: argparse.Namespace, entry: dict) -> None:
    """``--record`` only for the figures the registry holds: the whole dev split of the training file."""
    from models.dataset import file_sha256

    if args.split != "dev" or args.limit is not None:
        raise SystemExit("coach eval --record: needs --split dev and no --limit")
    if file_sha256(args.dialogues) != entry["training_data"]["sha256"]:
        raise SystemExit("coach eval --record: --dialogues is not the file this model was trained on")


def _record(entry: dict, model: Path, result: dict) -> None:
    """Store this run's dev figures in the model's registry entry and rewrite its model card."""
    from datetime import UTC, datetime

    from models import registry
    from models.card import write_card

    entry = {**entry, "metrics": {**entry["metrics"], "dev": result}, "metrics_measured": {
        "by": "coach eval --record", "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }}
    registry.register(entry, registry.REGISTRY)
    write_card(entry, model.parent / "MODEL_CARD.md")
    print(f"recorded dev figures for {entry['name']} {entry['version']}", file=sys.stderr)


def _explain(args: argparse.Namespace) -> int:
    from coachflow.explain import main_explain

    return main_explain(args)


def _validate_lineage(args: argparse.Namespace) -> int:
    from lineage.validate import DEFAULT_SPEC_DIR, SpecValidator, validate_file

    spec = args.spec or DEFAULT_SPEC_DIR
    problems = validate_file(args.file, SpecValidator(spec))
    for problem in problems:
        print(problem)
    events = sum(1 for line in args.file.read_text().splitlines() if line.strip())
    verdict = f"{len(problems)} problems" if problems else "every one conforms"
    print(f"{args.file}: {events} events, {verdict} (spec: {spec})", file=sys.stderr)
    return 1 if problems else 0


def _schemas(args: argparse.Namespace) -> int:
    import schemas

    if args.action == "export":
        for path in schemas.export_all():
            print(path)
        return 0
    stale = [
        stem for stem in schemas.CONTRACTS
        if not (schemas.JSON_DIR / f"{stem}.schema.json").is_file()
        or (schemas.JSON_DIR / f"{stem}.schema.json").read_text() != schemas.render(stem)
    ]
    for stem in stale:
        print(f"stale: schemas/json/{stem}.schema.json (run `coach schemas export`)", file=sys.stderr)
    return 1 if stale else 0


def _topics(args: argparse.Namespace) -> int:
    from coachflow.config import Settings
    from coachflow.knowledge import topic_specs as knowledge_specs
    from coachflow.knowledge_config import KnowledgeSettings
    from coachflow.topics import ensure_topics, topic_specs

    settings = Settings(brokers=args.brokers, topic_partitions=args.partitions)
    both = {**topic_specs(settings), **knowledge_specs(KnowledgeSettings(), settings)}  # both jobs' topics
    created = ensure_topics(settings, align_retention=True, specs=both)
    print("created: " + (", ".join(created) or "none (all exist)"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coach", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    replay = commands.add_parser("replay", help="replay STAR dialogues as contract events")
    replay.add_argument(
        "path", type=Path, help="STAR dialogues: a .jsonl(.gz) file or a directory of .json files"
    )
    target = replay.add_mutually_exclusive_group()
    target.add_argument("--out", type=Path, help="write JSONL here (the embedded mode's input)")
    target.add_argument("--brokers", help="produce to this Kafka cluster instead")
    replay.add_argument("--topic-events", default=topic("events").default)
    replay.add_argument("--topic-context", default=topic("context").default)
    replay.add_argument("--partitions", type=int, default=4, help="partitions of input topics it creates")
    replay.add_argument(
        "--key",
        choices=("conversation", "customer"),
        default="conversation",
        help="key events by conversation or by customer id (COACH_INPUT_KEY; co-partitioned shares)",
    )
    replay.add_argument("--split", choices=("all", "train", "dev"), default="all",
                        help="which dialogues (see docs/architecture.md: the dev split)")
    replay.add_argument("--limit", type=int, help="at most this many dialogues")
    replay.add_argument("--concurrency", type=int, default=8, help="conversations in flight at once")
    replay.add_argument("--speed", type=float, default=0.0,
                        help="0: as fast as possible (default); 1: real time; 10: ten times faster")
    replay.add_argument("--time-scale", type=float, default=1.0,
                        help="shrink each dialogue's own timeline (0.1: ten times shorter pauses)")
    times = replay.add_mutually_exclusive_group()
    times.add_argument(
        "--start-time", help="event time of the first record (ISO-8601; default: now when paced)"
    )
    times.add_argument(
        "--end-time",
        help="event time of the last record (ISO-8601; default: now when not paced, "
        "so that the job accepts the replay whenever it runs)",
    )
    replay.add_argument("--voice-share", type=float, default=0.4, help="share of conversations on voice")
    replay.set_defaults(func=_replay)

    base = commands.add_parser("baseline", help="the baseline scorer")
    base_cmds = base.add_subparsers(dest="action", required=True)
    train = base_cmds.add_parser("train", help="train on STAR's train split and register it")
    train.add_argument("--star", type=Path, default=_star_dir(), help="the STAR directory")
    train.set_defaults(func=_baseline_train)

    fit = commands.add_parser("train", help="train the ONNX next-action and escalation model on STAR")
    fit.add_argument(
        "--star", type=Path, default=_star_dir(), help="STAR directory (dialogues.jsonl.gz, tasks/)"
    )
    fit.add_argument(
        "--out", type=Path, help="write here and do not register (default: models/coach, registered)"
    )
    fit.add_argument("--version", help="model version (default: the TrainConfig's)")
    fit.add_argument("--members", type=int, help="ensemble members")
    fit.add_argument("--hidden", type=int, help="hidden units per member")
    fit.add_argument("--epochs", type=int)
    fit.add_argument("--seed", type=int)
    fit.add_argument("--limit", type=int, help="read at most this many dialogues (smoke tests)")
    fit.set_defaults(func=_train)

    ev = commands.add_parser("eval", help="evaluate the serving model on STAR-format dialogues")
    ev.add_argument("--dialogues", type=Path, required=True,
                    help="STAR dialogues: a .jsonl(.gz) file or a directory of .json files")
    ev.add_argument("--split", choices=("all", "train", "dev"), default="all",
                    help="which of them (default all; `dev` is our held-out split of shared/data/star)")
    ev.add_argument("--limit", type=int)
    ev.add_argument("--model", type=Path, help="model file (default: COACH_MODEL); must be registered")
    ev.add_argument("--compact", action="store_true", help="print the JSON on one line")
    ev.add_argument("--record", action="store_true",
                    help="store the figures in the model's registry entry and model card "
                         "(the dev split of the file it was trained on; after serving code changes)")
    ev.set_defaults(func=_eval)

    lineage = commands.add_parser("lineage", help="provenance of suggestions")
    lineage_cmds = lineage.add_subparsers(dest="action", required=True)
    why = lineage_cmds.add_parser("explain", help="why an agent saw a suggestion: its whole chain")
    why.add_argument("suggestion_id")
    why.add_argument("--decisions", type=Path, default=Path("out/decisions.jsonl"),
                     help="an embedded run's decisions (default out/decisions.jsonl)")
    why.add_argument("--lineage", type=Path, default=Path("out/lineage.jsonl"),
                     help="the lineage file, to add the run's START event (if present)")
    why.add_argument("--brokers", help="read the decisions topic instead")
    why.add_argument("--topic", default=topic("decisions").default)
    why.set_defaults(func=_explain)
    check = lineage_cmds.add_parser(
        "validate",
        help="check lineage events against the OpenLineage spec and facet schemas (local files only)",
    )
    check.add_argument("file", nargs="?", type=Path, default=Path("out/lineage.jsonl"),
                       help="a JSON-lines file of OpenLineage events (default out/lineage.jsonl)")
    check.add_argument(
        "--spec",
        type=Path,
        help="the spec: OpenLineage.json and facets/ (default ../shared/data/openlineage-spec)",
    )
    check.set_defaults(func=_validate_lineage)

    from coachflow.report import add_arguments as report_arguments

    report = commands.add_parser(
        "report", help="acceptance, alert and suppression rates per version, arm, rule and action; PNG chart")
    report_arguments(report)
    report.set_defaults(func=_report)

    from console.server import add_arguments as console_arguments

    console = commands.add_parser(
        "console", help="the reference agent console: live suggestions, accept/dismiss"
    )
    console_arguments(console)
    console.set_defaults(func=_console)

    bench = commands.add_parser(
        "bench",
        help="throughput (job and a plain confluent-kafka reference loop) and end-to-end latency",
        description="Starts the project's broker on 127.0.0.1:$KAFKA_PORT (9092) unless --brokers is given, "
        "preloads STAR "
        "conversations for a full-speed throughput run of the job and of the reference loop, then "
        "replays at --rate for --duration seconds and measures append-to-append latency, of the job and "
        "then of the reference loop. "
        "Prints one JSON object.",
    )
    bench.add_argument("--brokers", help="use this broker (default: the project's, started if needed)")
    bench.add_argument("--rate", type=_rates, default=(5000.0,),
                       help="records per second in the latency run; several, comma-separated "
                            "(1000,2000,5000), run one after the other")
    bench.add_argument("--duration", type=float, default=30.0, help="seconds of the latency run (0: skip it)")
    bench.add_argument("--throughput-records", type=int, default=60_000, help="records in the throughput run")
    bench.add_argument("--rounds", type=int, default=3,
                       help="throughput rounds, job and reference in alternating order; medians reported "
                            "(0: skip the throughput run, latency only)")
    bench.add_argument("--partitions", type=int, default=4)
    bench.add_argument("--workers", type=int, default=1, help="workers per process (bytewax.run -w)")
    bench.add_argument("--processes", type=int, default=1, help="local processes (bytewax.run -i/-a)")
    bench.add_argument("--jobs", type=int, default=1,
                       help="independent one-process jobs, each on its share of the partitions "
                            "(COACH_KAFKA_PARTITIONS; the replay then keys events by customer id)")
    bench.add_argument("--concurrency", type=int, default=400, help="conversations in flight")
    bench.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the reference loop (its throughput and latency runs)",
    )
    bench.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the Kafka floor (bytes only, and with the contracts) after the throughput rounds",
    )
    bench.add_argument("--compact", action="store_true", help="print the JSON on one line")
    bench.add_argument(
        "--keep-topics", action="store_true", help="keep the run's topics (deleted at the end otherwise)"
    )
    bench.add_argument(
        "--knowledge",
        type=Path,
        nargs="?",
        const=Path("data/knowledge/articles.jsonl"),
        help="run the knowledge job beside the job in the latency run, indexing these articles "
        "(default: the bundled sample; e.g. ../shared/data/doc2dial/documents.jsonl.gz)",
    )
    bench.set_defaults(func=_bench)

    from coachflow.knowledge_cli import add_arguments as knowledge_arguments

    knowledge = commands.add_parser(
        "knowledge", help="knowledge assist: import articles, build and search the index, evaluate, train")
    knowledge_arguments(knowledge)

    contracts = commands.add_parser("schemas", help="JSON Schemas of the topic contracts")
    contracts.add_argument("action", choices=("export", "check"))
    contracts.set_defaults(func=_schemas)

    topics = commands.add_parser("topics", help="Kafka topics")
    topics.add_argument("action", choices=("create",))
    topics.add_argument("--brokers", required=True)
    topics.add_argument("--partitions", type=int, default=4)
    topics.set_defaults(func=_topics)

    from coachflow.security import add_arguments as acls_arguments

    acls = commands.add_parser("acls", help="who may use which Kafka topic: the secured broker's ACLs")
    acls_arguments(acls)
    acls.set_defaults(func=_acls)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
