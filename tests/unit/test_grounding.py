"""Grounded suggestions: a suggestion that states a knowledge-base fact must state the result's value."""

from __future__ import annotations

from models.templates import TemplateBook, agrees
from operators.guardrails import GROUNDED
from tests.unit.test_guardrails import Conversation, customer, verdict

BOOK = TemplateBook(
    by_task={"bank_balance": {"bank_inform_balance": "Your current balance is {balance:d} in credit."}}
)


def verified_balance(c: Conversation, balance: int = 5703, candidates=(("bank_inform_balance", 0.8),)):
    customer(c, 1, "what's my balance")
    return c.add(
        "kb_result", t=30, api="bank_balance", item={"BankBalance": balance}, candidates=list(candidates)
    )


def test_a_suggestion_stating_the_results_value_passes():
    c = Conversation()
    decision, suggestion, _ = c.decide(verified_balance(c))
    assert suggestion.text == "Your current balance is 5703 in credit."
    assert verdict(decision, GROUNDED).outcome == "pass"


def test_a_suggestion_contradicting_its_result_is_held_and_the_next_candidate_shown():
    c = Conversation()
    env = verified_balance(c, candidates=[("bank_inform_balance", 0.8), ("anything_else", 0.1)])
    # A slot filled from somewhere else than this result (a stale lookup, another source).
    env.texts["bank_inform_balance"] = "Your current balance is 9999 in credit."
    decision, suggestion, _ = c.decide(env)
    held = verdict(decision, GROUNDED)
    assert held.outcome == "block" and "balance" in held.detail and "bank_balance" in held.detail
    assert "9999" not in held.detail and "5703" not in held.detail  # slot names only, never the values
    assert suggestion is None or suggestion.action != "bank_inform_balance"
    assert decision.suggestion is None or "9999" not in decision.suggestion.text


def test_a_held_suggestion_without_alternatives_is_suppressed_by_the_rule():
    c = Conversation()
    env = verified_balance(c)
    env.texts["bank_inform_balance"] = "Your current balance is 12 in credit."
    decision, suggestion, _ = c.decide(env)
    assert suggestion is None and decision.outcome == "suppressed" and decision.reasons == [GROUNDED]


def test_points_without_a_result_have_no_grounding_verdict():
    c = Conversation()
    decision, _, _ = c.decide(customer(c, 1, candidates=[("hello", 0.6)]))
    assert all(rule.rule_id != GROUNDED for rule in decision.rules)


def test_stated_facts_read_the_slots_a_text_fills():
    item = (("BankBalance", 5703),)
    assert BOOK.stated_facts("bank_inform_balance", "Your current balance is 5703 in credit.", "bank_balance",
                             (), item) == [("balance", "5703", 5703)]
    assert BOOK.contradictions("bank_inform_balance", "Your current balance is 57 in credit.", "bank_balance",
                               (), item) == ["balance"]
    # An unfilled slot states nothing; a text that is not the template states nothing either.
    assert (
        BOOK.stated_facts(
            "bank_inform_balance", "Your current balance is [balance] in credit.", "bank_balance", (), item
        )
        == []
    )
    assert BOOK.stated_facts("bank_inform_balance", "Something else.", "bank_balance", (), item) == []


def test_agrees_compares_as_fill_writes_values():
    assert agrees("5703", 5703) and agrees("$5,703", 5703) and agrees("Paris", "paris")
    assert agrees("red, blue", ["red", "blue"])
    assert not agrees("5704", 5703) and not agrees("London", "Paris") and not agrees("many", 3)
