"""The re-ranker's model card, written from its registry entry by `coach knowledge train`."""

from __future__ import annotations

from pathlib import Path


def render(entry: dict) -> str:
    dev = entry["metrics"]["dev"]
    recalls = " | ".join(str(dev[f"recall_at_{k}"]) for k in (1, 3, 5, 10))
    cpu = f'{dev.get("cpu_p50_ms", "-")} / {dev.get("cpu_p99_ms", "-")} ms'
    dev_row = f'| {dev["n"]} | {recalls} | {dev["mrr"]} | {dev["p50_ms"]} / {dev["p99_ms"]} ms | {cpu} |'
    config = entry["config"]
    data = entry["training_data"]
    recorded = entry.get("metrics_measured", {})
    return f"""# Model card: {entry["name"]} {entry["version"]}

The learned re-ranker of coachflow's knowledge assist, one ONNX file
(`models/{entry["path"]}`, {entry["size_kb"]} KB, sha256 `{entry["sha256"]}`),
registered in `models/registry.json`; the knowledge job refuses the file if
its hash differs or if it was trained with other feature code
(`{entry["feature_spec"]}`).

## Intended use
Rank the passages of a business's knowledge base for the customer's latest
turn in a conversation, given the conversation so far, so that an agent
sees the passage that answers it (`coaching.knowledge` cards). A person
reads the passage and decides; the card is not an automated reply.

## Data
doc2dial (Feng et al., EMNLP 2020; CC BY 3.0, IBM): goal-oriented dialogues
in which an agent answers a user from one government-service document (DMV,
SSA, VA, student aid). Our copy in `{data["documents"]["path"]}` and
`{data["turns"]["path"]}` (sha256 `{data["turns"]["sha256"][:16]}…`).
{data["split"]}; {data["turns_used"]} train turns gave {data["candidates"]}
labelled candidates. A candidate is positive when it is in the gold
document and holds the gold answer's first character.

## Model
- Candidates (`models/knowledge/features.py`): every passage of the articles
  the whole conversation and the customer's turns point to (BM25 over
  articles, bm25s), and the best passages for the customer's last turn.
- Passages: {entry["passage_unit"]}.
- {len(entry["features"])} features per candidate: BM25 of the passage, its
  heading, its article and title for the customer's last, previous and all
  turns and for the agent's turns; the article's ranks; where the agent's
  last and earlier turns are grounded in the article and the candidate's
  distance from there; its position and length.
- An ensemble of {config["members"]} MLPs (hidden layers {config["hidden"]},
  L2 {config["alpha"]}, scikit-learn, early stopping) over standardised
  features; the score is their mean probability.

## Metrics (dev split, through the serving path: `coach knowledge eval --split dev`)
| n | recall@1 | recall@3 | recall@5 | recall@10 | MRR | p50 / p99 (wall) | p50 / p99 (CPU) |
| --- | --- | --- | --- | --- | --- | --- | --- |
{dev_row}

Measured by `{recorded.get("by", "coach knowledge train")}` on {recorded.get("at", entry["created_at"])[:10]}
on a shared 2-core VM (load average then: {recorded.get("load_average", "not noted")}); latency is per
query (features and the model call): wall clock moves with what else the
machine runs, CPU time much less. `docs/knowledge.md` has the commands and
the figures with their spread.

## Limits
- English only; lexical matching (BM25) under the features: a question that
  shares no words with its answer is found only through the conversation's
  grounding.
- The conversation's grounding assumes agents answer from the knowledge
  base, as doc2dial's agents do; elsewhere those features carry less.
- Trained on four US government domains; other knowledge bases keep the
  features' meaning (they are relative to each query), but retrain on your
  own grounded conversations when you have them.

## License
Trained on doc2dial (CC BY 3.0, IBM); see NOTICE.md.
"""


def write_card(entry: dict, path: Path | str) -> None:
    Path(path).write_text(render(entry))
