"""`answer_style: sentences` (instantiate.v3): numbered sentences in, a sentence range out, mapped back verbatim."""

from __future__ import annotations

import json

from fi_spark.config import InstantiateConfig, load_prompt
from fi_spark.instantiate.excerpts import number_sentences, sentence_spans
from fi_spark.instantiate.prompts import (
    MAX_SENTENCES,
    InstantiateRules,
    build_messages,
    check_prompt,
    evaluate_instantiation,
    response_schema,
    sentence_range,
)

DOC = (
    "Bees dance to share where food is. A round dance means the flowers are close to the hive. "
    "A waggle dance gives the direction and the distance of food further away.\n\n"
    "Scouts repeat the dance many times!"
)
RULES = InstantiateRules(min_grounding=0.8, min_span=5, min_answer_tokens=3, answer_style="sentences")


def answer(first: int, last: int, instruction: str = "How do bees tell each other where food is?") -> str:
    return json.dumps(
        {"compatible": True, "slots": [{"slot": "an animal", "value": "bees"}], "instruction": instruction,
         "first_sentence": first, "last_sentence": last}
    )  # fmt: skip


def test_sentence_spans_are_exact_slices_without_outer_whitespace() -> None:
    """Each sentence span is the shown text's own characters, blank lines and separators excluded."""
    spans = sentence_spans(DOC)
    assert [DOC[s:e] for s, e in spans] == [
        "Bees dance to share where food is.",
        "A round dance means the flowers are close to the hive.",
        "A waggle dance gives the direction and the distance of food further away.",
        "Scouts repeat the dance many times!",
    ]
    assert sentence_spans("  \n\n ") == [] and sentence_spans("") == []
    assert sentence_spans("  One line only") == [(2, 15)]


def test_numbering_keeps_the_text_between_sentences() -> None:
    """The numbered document is the shown text with `[k] ` before sentence k, nothing else changed."""
    assert number_sentences("First one. Second one.\nThird") == "[1] First one. [2] Second one.\n[3] Third"
    assert number_sentences(DOC).endswith("further away.\n\n[4] Scouts repeat the dance many times!")
    assert number_sentences("") == ""


def test_range_maps_back_to_the_verbatim_span() -> None:
    """first..last is the text from the start of `first` to the end of `last`, separators included."""
    check = evaluate_instantiation(answer(3, 4), DOC, RULES)
    assert check.reason is None
    assert check.answer == (
        "A waggle dance gives the direction and the distance of food further away.\n\n"
        "Scouts repeat the dance many times!"
    )
    assert check.excerpt_share == 1.0 and check.grounding == 1.0
    assert check.instruction == "How do bees tell each other where food is?"
    assert check.slot_values == [{"slot": "an animal", "value": "bees"}]


def test_first_and_last_sentence_edges() -> None:
    """The very first sentence, the very last, and the whole document are reachable."""
    assert evaluate_instantiation(answer(1, 1), DOC, RULES).answer == "Bees dance to share where food is."
    assert evaluate_instantiation(answer(4, 4), DOC, RULES).answer == "Scouts repeat the dance many times!"
    assert evaluate_instantiation(answer(1, 4), DOC, RULES).answer == DOC


def test_single_sentence_document() -> None:
    """A document without sentence breaks is sentence 1; sentence 2 does not exist."""
    doc = "Honey keeps for years because it holds little water"
    assert evaluate_instantiation(answer(1, 1), doc, RULES).answer == doc
    out = evaluate_instantiation(answer(1, 2), doc, RULES)
    assert (out.reason, out.detail) == (
        "excerpt_unresolved",
        "last_sentence 2 is not a sentence of the shown text (1..1)",
    )


def test_out_of_range_and_reversed_ranges_are_unresolved() -> None:
    """A number outside 1..n or last < first is excerpt_unresolved, the detail naming which number."""
    out = evaluate_instantiation(answer(5, 5), DOC, RULES)
    assert (out.reason, out.detail) == (
        "excerpt_unresolved",
        "first_sentence 5 is not a sentence of the shown text (1..4)",
    )
    out = evaluate_instantiation(answer(0, 2), DOC, RULES)
    assert (out.reason, out.detail) == (
        "excerpt_unresolved",
        "first_sentence 0 is not a sentence of the shown text (1..4)",
    )
    out = evaluate_instantiation(answer(3, 2), DOC, RULES)
    assert (out.reason, out.detail) == ("excerpt_unresolved", "last_sentence 2 < first_sentence 3")


def test_sentences_beyond_the_shown_cut_do_not_exist() -> None:
    """Numbers count the shown text (cut to max_source_chars), not the whole document."""
    rules = InstantiateRules(min_answer_tokens=3, max_source_chars=100, answer_style="sentences")
    out = evaluate_instantiation(answer(4, 4), DOC, rules)
    assert (out.reason, out.detail) == (
        "excerpt_unresolved",
        "first_sentence 4 is not a sentence of the shown text (1..3)",
    )
    assert evaluate_instantiation(answer(2, 3), DOC, rules).answer == (
        "A round dance means the flowers are close to the hive. A waggle"  # the cut shown to the model
    )


def test_long_range_keeps_whole_sentences_that_fit() -> None:
    """Over max_answer_chars the range is cut to the whole sentences that fit, at least the first."""
    rules = InstantiateRules(min_answer_tokens=3, max_answer_chars=100, answer_style="sentences")
    assert evaluate_instantiation(answer(1, 4), DOC, rules).answer == (
        "Bees dance to share where food is. A round dance means the flowers are close to the hive."
    )
    tiny = InstantiateRules(min_answer_tokens=3, max_answer_chars=10, answer_style="sentences")
    assert evaluate_instantiation(answer(3, 4), DOC, tiny).answer == (
        "A waggle dance gives the direction and the distance of food further away."
    )
    assert sentence_range(DOC, 2, 2, 10) == ((35, 89), "")


def test_unicode_text_maps_by_characters() -> None:
    """Accents, CJK and curly quotes: spans are character offsets, so the answer is the exact text."""
    doc = "Le café ouvre à 7 h. « Très bon », dit-elle. 東京は大きい。Ça coûte 3 € l’unité!"
    assert [doc[s:e] for s, e in sentence_spans(doc)] == [
        "Le café ouvre à 7 h.", "« Très bon », dit-elle.", "東京は大きい。Ça coûte 3 € l’unité!",
    ]  # fmt: skip
    check = evaluate_instantiation(answer(1, 2, "Quand ouvre le café ?"), doc, RULES)
    assert check.reason is None and check.answer == "Le café ouvre à 7 h. « Très bon », dit-elle."


def test_declines_and_malformed_answers() -> None:
    """compatible: false is incompatible; missing or non-integer numbers are unparseable."""
    declined = json.dumps(
        {"compatible": False, "slots": [], "instruction": "", "first_sentence": 1, "last_sentence": 1}
    )
    assert evaluate_instantiation(declined, DOC, RULES).reason == "incompatible"
    for bad in (
        json.dumps({"compatible": True, "slots": [], "instruction": "Why?", "first_sentence": "1", "last_sentence": 2}),
        json.dumps(
            {"compatible": True, "slots": [], "instruction": "Why?", "first_sentence": True, "last_sentence": 2}
        ),
        json.dumps({"compatible": True, "slots": [], "instruction": "Why?", "answer": "Bees dance."}),
        "not json",
    ):
        assert evaluate_instantiation(bad, DOC, RULES).reason == "unparseable"
    assert evaluate_instantiation(answer(1, 1, "  "), DOC, RULES).reason == "empty_instruction"
    assert evaluate_instantiation(answer(1, 1, "Why do <fi>x</fi> dance?"), DOC, RULES).reason == "unfilled_slots"


def test_v3_prompt_numbers_the_document_and_schema_bounds_the_numbers() -> None:
    """The v3 prompt shows numbered sentences (examples too); its schema asks for two bounded integers."""
    spec = load_prompt("instantiate.v3")
    check_prompt(spec)
    assert spec.answer_style == "sentences"
    messages = build_messages(spec, "How do <fi>an animal</fi> share food places?", DOC, 3000)
    assert "[1] Bees dance to share where food is. [2] A round dance" in messages[-1]["content"]
    assert "\n\n[4] Scouts repeat" in messages[-1]["content"]
    assert messages[1]["content"].startswith('DOCUMENT:\n"""\n[1] ')  # the first example, numbered
    assert json.loads(messages[2]["content"])["first_sentence"] == 2
    union = response_schema(1, 200, 700, spec=spec)
    assert union is not None
    schema, decline = union["anyOf"]
    assert decline["properties"] == {"compatible": {"const": False}}
    props = schema["properties"]
    assert props["first_sentence"] == {
        "maximum": MAX_SENTENCES,
        "minimum": 1,
        "title": "First Sentence",
        "type": "integer",
    }
    assert props["last_sentence"]["maximum"] == MAX_SENTENCES and "answer" not in props
    assert props["slots"]["minItems"] == props["slots"]["maxItems"] == 1
    assert schema["required"] == ["compatible", "slots", "instruction", "first_sentence", "last_sentence"]
    rules = InstantiateRules.from_config(InstantiateConfig(max_answer_chars=700), spec)
    assert (rules.answer_style, rules.max_answer_chars) == ("sentences", 700)


def test_sentence_numbers_leaking_into_the_instruction_are_rejected() -> None:
    """The shown `[k]` numbering copied into the instruction (measured on SmolLM2-135M) is a reject, not a pair."""
    check = evaluate_instantiation(answer(3, 4, "What a behavior is, such as what a [1] is."), DOC, RULES)
    assert check.reason == "sentence_number_in_instruction"
    assert "[1]" in (check.detail or "")
    assert evaluate_instantiation(answer(3, 4, "Compare [12] with the rest."), DOC, RULES).reason == (
        "sentence_number_in_instruction"
    )


def test_filled_instruction_is_the_template_with_its_values() -> None:
    """instantiate.v4: the model gives slot values only; the instruction is built, never cut (issue #18)."""
    import json

    from fi_spark.instantiate.prompts import InstantiateRules, evaluate_instantiation

    shown = "Stephen King\n\nStephen Edwin King (born September 21, 1947) is an American author. He lives in Maine."
    rules = InstantiateRules(answer_style="sentences", instruction_style="filled", slot_values_from_source=True,
                             max_answer_chars=700)  # fmt: skip
    answer = {"compatible": True, "slots": [{"slot": "a famous person", "value": "Stephen Edwin King"}],
              "first_sentence": 1, "last_sentence": 2}  # fmt: skip
    check = evaluate_instantiation(json.dumps(answer), shown, rules, template="Who is <fi>a famous person</fi>?")
    assert (check.reason, check.instruction) == (None, "Who is Stephen Edwin King?")
    assert check.answer == "Stephen Edwin King (born September 21, 1947) is an American author."  # no title line
    copied = {**answer, "slots": [{"slot": "a famous person", "value": "a famous person"}]}  # labeled junk shape
    assert evaluate_instantiation(
        json.dumps(copied), shown, rules, template="Who is <fi>a famous person</fi>?"
    ).reason == ("slot_value_empty")
    elsewhere = {**answer, "slots": [{"slot": "a famous person", "value": "Marie Curie"}]}
    assert evaluate_instantiation(
        json.dumps(elsewhere), shown, rules, template="Who is <fi>a famous person</fi>?"
    ).reason == ("slot_not_in_source")


def test_a_written_instruction_at_the_cap_is_cut_not_kept() -> None:
    """An instruction as long as the schema's cap was cut off mid-sentence: `instruction_cut`, never a prefix."""
    import json

    from fi_spark.instantiate.prompts import InstantiateRules, evaluate_instantiation

    rules = InstantiateRules(answer_style="sentences", max_instruction_chars=40)
    answer = {"compatible": True, "slots": [], "instruction": "x" * 40, "first_sentence": 1, "last_sentence": 1}
    check = evaluate_instantiation(json.dumps(answer), "One sentence that is long enough here.", rules)
    assert check.reason == "instruction_cut"
