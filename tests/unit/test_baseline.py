"""The baseline scorer, its templates, metrics and the model registry."""

from __future__ import annotations

import json

import pytest

from models import registry, star
from models.baseline import ARTIFACT, BaselineModel, fit
from models.dataset import Example, examples
from models.evaluate import evaluate, ranking_figures
from models.templates import TemplateBook, fill
from operators.features import Features
from operators.scoring import TemplateScorer
from tests.helpers import STAR_DIALOGUES, STAR_DIR, registered_copy


def features(task="bank_balance", prev=(), trigger="customer_turn", kb_api=None, kb_total=None,
             kb_item=()) -> Features:
    return Features(
        conversation_id="c",
        event_id="e",
        agent_id="a",
        channel="chat",
        trigger=trigger,
        task=task,
        tasks=(task,),
        prev_actions=tuple(prev),
        actions_so_far=tuple(prev),
        kb_api=kb_api,
        kb_total_items=kb_total,
        kb_item=kb_item,
        last_customer_text="",
        first_customer_text="",
        history=(),
        turns_60s_customer=0,
        turns_60s_agent=0,
        agent_talk_share_60s=0.0,
        silence_s=0.0,
        complaints=0,
        n_turns=0,
    )


BOOK = TemplateBook(by_task={"bank_balance": {
    "hello": "Hello, how can I help?",
    "ask_name": "Could I get your full name, please?",
    "bank_ask_pin": "Right, and your PIN as well please.",
    "bank_inform_balance": "Your current balance is {balance:d} in credit.",
}})


def example(label, **kw) -> Example:
    return Example(features(**kw), label, 1, ("bank",), True, False, False, "e")


def test_it_predicts_the_most_frequent_next_action_for_the_context():
    train = [example("ask_name", prev=("hello",))] * 5 + [example("bank_ask_pin", prev=("hello",))] * 2
    train += [example("hello")] * 4
    model = BaselineModel("t", fit(train), BOOK)
    ranked = model.predict(features(prev=("hello",)))
    assert [a for a, _ in ranked] == ["ask_name", "bank_ask_pin", "hello"]
    assert ranked[0][1] == pytest.approx(5 / 7)
    assert model.predict(features())[0][0] == "hello"


def test_it_backs_off_to_coarser_context_and_never_suggests_untemplated_actions():
    train = [example("custom", prev=("ask_name",))] * 9 + [example("bank_ask_pin", prev=("ask_name",))] * 3
    model = BaselineModel("t", fit(train), BOOK)
    # Unseen task: backs off to (prev, trigger); "custom" has no template.
    ranked = model.predict(features(task="weather", prev=("ask_name",)))
    assert [a for a, _ in ranked] == ["bank_ask_pin"]


def test_evaluate_reports_overall_per_domain_and_timing_figures():
    train = [example("ask_name", prev=("hello",))] * 3
    scorer = TemplateScorer(BaselineModel("t", fit(train), BOOK))
    result = evaluate(scorer, [example("ask_name", prev=("hello",)), example("hello", prev=("hello",))])
    assert result["accuracy"] == 0.5 and result["n"] == 2
    assert result["per_domain"]["bank"]["n"] == 2
    assert result["escalation_auc"] is None  # the baseline has no risk head
    assert result["score_us_mean"] > 0


def test_ranking_figures_follow_their_definitions():
    gold = ["a", "a", "b", "c"]
    ranked = [["a", "c"], ["b", "a"], ["b", "c"], ["b", "a"]]
    figures = ranking_figures(gold, ranked)
    # top-1 a,b,b,b: F1(a)=2/3 (P=1, R=.5), F1(b)=.5 (P=1/3, R=1), F1(c)=0; support 2,1,1
    assert figures["weighted_f1"] == pytest.approx(round((2 * 2 / 3 + 0.5) / 4, 4))
    assert figures["accuracy"] == 0.5
    assert figures["top3_accuracy"] == 0.75


def test_templates_fill_slots_from_the_knowledge_base_item():
    assert fill("Your current balance is {balance:d} in credit.", {"BankBalance": 5703}) == (
        "Your current balance is 5703 in credit."
    )
    assert (
        fill("Dr. {doctor_name:s} at {time:s}", {"DoctorName": "Morgan", "Time": ""})
        == "Dr. Morgan at [time]"
    )
    # Slot values cannot smuggle markup or further template fields.
    assert fill("{message:s}", {"Message": "<b>{pin}</b>\u202e"}) == "bpin/b"
    assert BOOK.render("query", "bank_balance") == "[Look up: bank balance]"
    assert BOOK.render("no_such_action", "bank_balance") is None


def test_template_book_reads_star_tasks():
    book = TemplateBook.from_star(STAR_DIR / "tasks")
    assert book.template("bank_inform_balance", "bank_balance").startswith("Your current balance")
    assert book.graph["bank_balance"]["ask_name"] == "bank_ask_account_number"
    assert len(book.by_task) == 24


def test_committed_baseline_is_registered_and_loads():
    scorer = registry.load_scorer(ARTIFACT)
    assert isinstance(scorer, TemplateScorer) and scorer.version.startswith("baseline-")
    entry = registry.verify(ARTIFACT)
    assert entry["metrics"]["dev"]["weighted_f1"] > 0.5
    assert entry["training_data"]["sha256"]


def test_a_tampered_model_file_is_refused(tmp_path, monkeypatch):
    copy, reg = registered_copy(tmp_path, monkeypatch, ARTIFACT)
    registry.verify(copy, reg)  # intact: accepted
    body = json.loads(copy.read_text())
    body["version"] = "baseline-evil"
    copy.write_text(json.dumps(body))
    with pytest.raises(registry.ModelIntegrityError, match="refusing to load"):
        registry.load_scorer(copy, reg)
    with pytest.raises(registry.ModelIntegrityError, match="not in the model registry"):
        registry.verify(tmp_path / "elsewhere.json", reg)


def test_the_committed_baseline_reproduces_its_registered_dev_figures():
    scorer = TemplateScorer(BaselineModel.load(ARTIFACT))
    dev = list(examples(star.select(STAR_DIALOGUES, split="dev", limit=150)))
    figures = evaluate(scorer, dev)
    # Well above chance (164 labels) and close to the full-dev figures in the registry.
    assert figures["accuracy"] > 0.45 and figures["top3_accuracy"] > 0.75
