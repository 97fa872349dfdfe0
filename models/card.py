"""The model card, written from a registry entry by `coach train`."""

from __future__ import annotations

from pathlib import Path


def _row(name: str, f: dict) -> str:
    return f"| {name} | {f['n']} | {f['accuracy']:.3f} | {f['weighted_f1']:.3f} | {f['top3_accuracy']:.3f} |"


def render(entry: dict) -> str:
    dev = entry["metrics"]["dev"]
    config = entry["config"]
    per_domain = "\n".join(_row(d, f) for d, f in dev["per_domain"].items())
    per_kind = "\n".join(_row(k, f) for k, f in dev["per_kind"].items())
    recorded = entry.get("metrics_measured")
    measured = (
        f"`{recorded['by']}` on {recorded['at'][:10]} with the serving code of that day" if recorded
        else "`coach train` on the machine that trained it"
    )
    return f"""# Model card: {entry['name']} {entry['version']}

Next-best-response and escalation-risk model of coachflow, embedded in the
streaming job as one ONNX file (`{entry['path']}`, {entry['size_mb']} MB,
sha256 `{entry['sha256']}`). Registered in `models/registry.json`; the job
refuses the file if its hash differs.

## Intended use
Suggest an agent's next action in a customer conversation (one of
{entry['label_set_size']} STAR actions, rendered with the task's approved reply
template) and score the customer's escalation risk per turn, for agent-assist
UIs where a person decides what to say. Not for automated replies, for judging
agents, or for domains and languages unlike STAR's (English, 13 domains).

## Data
STAR (Mosig et al., 2020; MIT, Rasa Technologies GmbH): Wizard-of-Oz dialogues
across 24 tasks. Trained on our train split of `shared/data/star/dialogues.jsonl.gz`
(sha256 `{entry['training_data']['sha256'][:16]}…`): every dialogue whose
`blake2b("split|<DialogueID>")` lands outside the lowest 15%;
{entry['training_data']['prediction_points']} prediction points (every wizard
`pick_suggestion` and `query`). The dev split (the other 15%) is held out for
evaluation and the softmax temperature. Escalation labels: the wizard's
answer to "did the user become aggressive or annoyed" (4% of dialogues).

## Model
- Inputs: one feature path (`operators/features.py`) for training and serving:
  the task and its flow graph (next step not yet taken, successor of the last
  action), the agent's previous and earlier actions, what triggered the
  prediction, the knowledge-base result's fields and values, the customer's
  words (latest turn, alone and with the previous action; earlier turns).
- Next action: an ensemble of {config['members']} sparse-input MLPs
  ({config['hidden']} hidden units each, dropout {config['dropout']}, label
  smoothing {config['label_smoothing']}, {config['epochs']} epochs), softmax
  averaged; temperature {entry['temperature']} fitted on dev.
- Escalation: logistic regression over sentiment (VADER's lexicon), shouting,
  complaints, out-of-scope answers, repetition and words.
- Input layer stored as int8 with per-column scales.

## Metrics (dev split, through the serving code: `coach eval`)
| | n | accuracy | weighted F1 | top-3 accuracy |
| --- | --- | --- | --- | --- |
{_row('all', dev)}
{per_kind}

Per domain (of the task in progress):

| domain | n | accuracy | weighted F1 | top-3 accuracy |
| --- | --- | --- | --- | --- |
{per_domain}

- Calibration: expected calibration error {dev['ece']} (15 bins, top-1 confidence).
- Escalation AUC (customer turns, dialogue-level label): {dev['escalation_auc']}.
- Scoring cost ({dev['batch_size']}-point batches, vectorising included):
  {dev['score_us_mean']} µs per point; batch of one: {dev['score_us_mean_batch_of_one']} µs
  mean, {dev['score_us_p99_batch_of_one']} µs p99, measured by {measured}.
  This shared 2-core VM's speed drifts between runs (by a quarter, in slow
  spells by half); `bench/scoring.py` reports a machine-speed indicator
  beside its figures, and docs/performance.md gives its latest runs.

## Limits
- STAR's wizards were crowd workers following scripted flows; "correct" means
  "what the wizard did", and several actions are often equally right.
- `custom` (the wizard typed free text) is a prediction but never a suggestion:
  it has no approved template.
- The escalation label is per dialogue, not per turn, and rare; treat the risk
  as a ranking signal with the alert threshold tuned on your data.
- English only; no speech features (pace, pitch) on voice.

## License
Trained on STAR (MIT, Rasa Technologies GmbH); sentiment lexicon from VADER
(MIT, C.J. Hutto). The file carries the STAR reply templates it renders.
"""


def write_card(entry: dict, path: Path | str) -> None:
    Path(path).write_text(render(entry))
