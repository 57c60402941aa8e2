"""The paper's selection rules as pure functions (fi_spark.match.candidates): sampling, budget, final budget."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fi_spark.match.candidates import (
    PlanRules,
    final_budget_keep,
    first_fit,
    plan_document,
    sample_key,
    slot_share_distance,
    slot_weights,
    template_tokens,
)


def cands(rows: list[tuple[str, float, int, int]]) -> pd.DataFrame:
    """Candidates of document d1: (template_id, score, n_slots, template_tokens)."""
    return pd.DataFrame(
        [("d1", t, s, k, tt, 100) for t, s, k, tt in rows],
        columns=["doc_id", "template_id", "score", "n_slots", "template_tokens", "doc_tokens"],
    )


def planned(frame: pd.DataFrame) -> list[tuple[str, int, int]]:
    return list(zip(frame["template_id"], frame["est_tokens"], frame["rank"], strict=True))


def test_template_tokens_drop_tags_and_count_words():
    """Slot tags are removed; the slot descriptions count as the words that will replace them."""
    assert template_tokens("How long should I bake <fi>a baked good</fi>?") == 8
    assert template_tokens("") == 0


def test_first_fit_skips_what_does_not_fit_and_stops_at_max():
    """Items that would overflow are skipped for later, shorter ones; max_n stops the scan."""
    assert first_fit([40, 70, 30, 20], 100) == [0, 2, 3]
    assert first_fit([40, 70, 30, 20], 100, max_n=2) == [0, 2]
    assert first_fit([40, 70, 30], None, max_n=2) == [0, 1]
    assert first_fit([120], 100) == []


def test_best_plan_keeps_highest_scores_within_the_budget():
    """Best-first in 100 tokens: t2 (0.9, 10+40) fits; t1 (60) and t3 (55) would overflow; t4 (45) still fits."""
    frame = cands([("t1", 0.8, 1, 20), ("t2", 0.9, 2, 10), ("t3", 0.7, 1, 15), ("t4", 0.6, 1, 5)])
    rules = PlanRules(max_per_doc=3, budget_ratio=1.0, answer_tokens=40)
    assert planned(plan_document(frame, 100, rules)) == [("t2", 50, 1), ("t4", 45, 2)]


def test_budget_ratio_and_no_budget():
    """A ratio of 2 doubles the budget; no budget keeps max_per_doc in score order."""
    frame = cands([("t1", 0.8, 1, 20), ("t2", 0.9, 2, 10), ("t3", 0.7, 1, 15)])
    assert [t for t, _, _ in planned(plan_document(frame, 100, PlanRules(3, budget_ratio=2.0, answer_tokens=40)))] == [
        "t2",
        "t1",
        "t3",
    ]
    assert [t for t, _, _ in planned(plan_document(frame, 10, PlanRules(2, answer_tokens=40)))] == ["t2", "t1"]


def test_a_document_too_short_for_any_pair_plans_nothing():
    """When even the smallest estimated pair exceeds the document's tokens, nothing is planned."""
    frame = cands([("t1", 0.8, 1, 20)])
    assert plan_document(frame, 50, PlanRules(3, budget_ratio=1.0, answer_tokens=40)).empty


def test_slot_weights_are_bank_share_over_candidate_share():
    """Bank 50/50 between 1 and 2 slots, candidates 80/20: 1-slot weight 0.625, 2-slot weight 2.5."""
    assert slot_weights({1: 500, 2: 500}, {1: 80, 2: 20}) == {1: 0.625, 2: 2.5}
    assert slot_weights({}, {1: 3}) == {1: 1.0}


def test_sample_key_is_deterministic_and_zero_weight_goes_last():
    """The key depends only on seed, document, template and weight; w=0 is never drawn first."""
    assert sample_key(0, "d1", "t1", 1.0) == sample_key(0, "d1", "t1", 1.0)
    assert sample_key(0, "d1", "t1", 1.0) != sample_key(1, "d1", "t1", 1.0)
    assert sample_key(0, "d1", "t1", 0.0) == -math.inf
    u_key = sample_key(0, "d1", "t1", 1.0)
    assert sample_key(0, "d1", "t1", 2.0) == pytest.approx(u_key / 2)  # a larger weight moves the key up


def test_slot_weighted_plan_is_a_seeded_sample():
    """slot_weighted orders by the seeded keys, not by score; the literal order below is the seed-0 draw."""
    frame = cands([(f"t{i}", 0.9 - i / 100, 1 + i % 2, 5) for i in range(6)])
    rules = PlanRules(max_per_doc=3, selection="slot_weighted", seed=0)
    weights = {1: 1.0, 2: 1.0}
    keys = {f"t{i}": sample_key(0, "d1", f"t{i}", 1.0) for i in range(6)}
    expected = sorted(keys, key=lambda t: -keys[t])[:3]
    got = [t for t, _, _ in planned(plan_document(frame, 100, rules, weights))]
    assert got == expected
    assert got == [t for t, _, _ in planned(plan_document(frame.iloc[::-1], 100, rules, weights))]  # input order


def test_slot_weighting_restores_the_bank_distribution():
    """Candidates biased 4:1 toward 1-slot templates; one pick per document over 400 documents lands near the
    bank's 50/50 with weights, near the bias without (the measure: total variation distance)."""
    rows = []
    for d in range(400):
        rows += [(f"d{d}", f"a{d}-{i}", 0.8, 1, 5, 100) for i in range(4)] + [(f"d{d}", f"b{d}", 0.8, 2, 5, 100)]
    frame = pd.DataFrame(rows, columns=["doc_id", "template_id", "score", "n_slots", "template_tokens", "doc_tokens"])
    bank = {1: 500, 2: 500}
    weights = slot_weights(bank, frame.groupby("n_slots").size().to_dict())
    rules = PlanRules(max_per_doc=1, selection="slot_weighted", seed=7)

    def picked(w: dict[int, float]) -> dict[int, int]:
        kept = pd.concat([plan_document(g, 100, rules, w) for _, g in frame.groupby("doc_id")])
        return kept.groupby("n_slots").size().to_dict()

    assert slot_share_distance(bank, picked(weights)) < 0.08
    assert slot_share_distance(bank, picked({1: 1.0, 2: 1.0})) > 0.2


def test_slot_share_distance():
    """Total variation distance of shares: identical 0, disjoint 1."""
    assert slot_share_distance({1: 2, 2: 2}, {1: 5, 2: 5}) == 0.0
    assert slot_share_distance({1: 1}, {2: 3}) == 1.0


def test_final_budget_keeps_best_verdicts_first():
    """Score, then expected score, then match rank decide the order; first fit on real tokens within 100."""
    pairs = pd.DataFrame(
        [
            ("p1", 60, 4, 4.1, 1),
            ("p2", 50, 5, 4.6, 2),
            ("p3", 30, 4, 4.4, 3),
            ("p4", 20, 4, None, 4),
            ("p5", 10, 4, 4.1, 5),
        ],
        columns=["pair_id", "tokens", "judge_score", "expected_score", "match_rank"],
    )
    # order: p2 (5), p3 (4, 4.4), p1 (4, 4.1, rank 1), p5 (4, 4.1, rank 5), p4 (no expected score)
    assert final_budget_keep(pairs, 100, 1.0) == ["p2", "p3", "p5"]
    assert final_budget_keep(pairs, 100, None) == ["p2", "p3", "p1", "p5", "p4"]
