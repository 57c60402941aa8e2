"""Instantiate prompt building and answer checks (fi_spark.instantiate.prompts)."""

from __future__ import annotations

import json

import pytest

from fi_spark.config import ConfigError, PromptSpec, load_prompt
from fi_spark.instantiate.prompts import (
    InstantiateRules,
    Instantiation,
    build_messages,
    check_prompt,
    evaluate_instantiation,
    slot_list,
)

SOURCE = (
    "Qantas maintenance workers will decide by secret ballot whether to accept the airline's offer of an "
    "incentive payment from company profits. Unions will advise members to reject the offer because it "
    "includes a wage freeze."
)
TEMPLATE = "Why are <fi>a group of workers</fi> being advised to reject <fi>an offer</fi>?"
RULES = InstantiateRules(min_grounding=0.8, min_span=5, min_answer_tokens=3, max_source_chars=3000)


def answer(instruction: str, text: str, slots: list | None = None) -> str:
    return json.dumps({"slots": slots or [], "instruction": instruction, "answer": text})


def test_shipped_prompt_builds_system_examples_and_request():
    """instantiate.v1 renders: system, one example pair (with its slot list), then the real request."""
    spec = load_prompt("instantiate.v1")
    check_prompt(spec)
    msgs = build_messages(spec, TEMPLATE, SOURCE, 3000)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert "1. a seasonal weather pattern\n2. a region or country" in msgs[1]["content"]
    assert Instantiation.model_validate_json(msgs[2]["content"]).instruction.startswith("What causes")
    last = msgs[-1]["content"]
    assert TEMPLATE in last and "1. a group of workers\n2. an offer" in last and SOURCE in last
    assert spec.version_tag.startswith("instantiate.v1+") and len(spec.version_tag) == len("instantiate.v1+") + 8


def test_source_is_cut_at_a_word_boundary():
    """A long source is cut to max_source_chars without splitting a word."""
    spec = load_prompt("instantiate.v1")
    msgs = build_messages(spec, TEMPLATE, SOURCE, 100)
    document = msgs[-1]["content"].split('"""')[1].strip()
    assert len(document) <= 100 and SOURCE.startswith(document) and SOURCE[len(document)] == " "


def test_slot_list_numbers_descriptions():
    """The {slots} value lists slot descriptions in template order."""
    assert slot_list(TEMPLATE) == "1. a group of workers\n2. an offer"
    assert slot_list("no slots here") == "(no slots)"


def test_grounded_pair_passes_with_measures():
    """A filled instruction and an excerpted answer pass, with grounding and slot values recorded."""
    parsed = answer(
        "Why are Qantas maintenance workers being advised to reject the incentive payment offer?",
        "Unions will advise members to reject the offer because it includes a wage freeze.",
        [{"slot": "a group of workers", "value": "Qantas maintenance workers"}],
    )
    check = evaluate_instantiation(parsed, SOURCE, RULES)
    assert check.reason is None
    assert check.grounding == 1.0 and check.answer_tokens == 14 and check.longest_excerpt == 14
    assert check.slot_values == [{"slot": "a group of workers", "value": "Qantas maintenance workers"}]


@pytest.mark.parametrize(
    ("parsed", "reason", "detail_part"),
    [
        (None, "unparseable", "expected an object"),
        ('{"answer": "x"}', "unparseable", "expected an object"),
        ("[1, 2]", "unparseable", "expected an object"),
        (answer("   ", "Unions will advise members."), "empty_instruction", "empty"),
        (answer("Why are <fi>a group of workers</fi> upset?", "Unions will advise"), "unfilled_slots", "<fi>"),
        (answer("Why are the workers upset </fi>?", "Unions will advise"), "unfilled_slots", "<fi>"),
        (answer("Why are the <fi workers upset?", "Unions will advise"), "unfilled_slots", "<fi>"),
        (answer("Why?", " ... "), "empty_answer", "no word tokens"),
        (answer("Why?", "Wage freeze."), "answer_too_short", "2 tokens < min_answer_tokens 3"),
        (
            answer("Why?", "Because management wants to keep costs low and unions always complain about pay."),
            "ungrounded",
            "grounding 0.000 < 0.80 (0/13 tokens in excerpts of >= 5)",
        ),
    ],
)
def test_each_check_rejects_with_reason_and_detail(parsed, reason, detail_part):
    """Every failing check yields its own reason and a detail with the measured value."""
    check = evaluate_instantiation(parsed, SOURCE, RULES)
    assert check.reason == reason
    assert detail_part in (check.detail or "")


def test_partly_grounded_answer_reports_measured_value():
    """An answer half excerpted fails at 0.8 and passes at 0.5, with the same measured grounding."""
    text = "Unions will advise members to reject the offer, which they think is quite unfair to them."
    # excerpt: unions will advise members to reject the offer (8) + 8 own words -> 8/16
    strict = evaluate_instantiation(answer("Why reject?", text), SOURCE, RULES)
    assert strict.reason == "ungrounded" and strict.grounding == pytest.approx(8 / 16)
    lenient = evaluate_instantiation(answer("Why reject?", text), SOURCE, InstantiateRules(min_grounding=0.5))
    assert lenient.reason is None and lenient.grounding == pytest.approx(8 / 16)


def test_grounding_uses_only_the_text_the_model_saw():
    """An excerpt from beyond max_source_chars does not count as copied."""
    parsed = answer("Why reject?", "Unions will advise members to reject the offer because it includes a wage freeze.")
    cut = InstantiateRules(max_source_chars=150)
    assert evaluate_instantiation(parsed, SOURCE, cut).reason == "ungrounded"


def test_prompt_with_unknown_placeholder_fails_at_load(tmp_path):
    """A prompt file asking for a value the stage does not provide is a ConfigError naming it."""
    path = tmp_path / "bad.yaml"
    path.write_text("name: instantiate\nversion: v9\nuser: 'Fill {template} using {context}'\n")
    spec = load_prompt(str(path))
    with pytest.raises(ConfigError, match="context"):
        check_prompt(spec)


def test_prompt_file_errors_are_config_errors(tmp_path):
    """Missing prompts and unknown keys in a prompt file are reported with the path."""
    with pytest.raises(ConfigError, match="not found"):
        load_prompt("instantiate.v999")
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nversion: v1\nuser: hi\ntemperature: 3\n")
    with pytest.raises(ConfigError, match="temperature"):
        load_prompt(str(path))


def test_version_tag_changes_with_content():
    """Editing a prompt without bumping its version still changes its lineage tag."""
    a = PromptSpec(name="judge", version="v1", user="Rate {answer}")
    b = PromptSpec(name="judge", version="v1", user="Rate this: {answer}")
    assert a.version_tag != b.version_tag and a.version_tag.startswith("judge.v1+")


def test_response_schema_fixes_the_slot_count():
    """The schema sent for a template with n slots asks for exactly n slot values (capped at MAX_SLOTS)."""
    from fi_spark.instantiate.prompts import MAX_SLOTS, response_schema

    two = response_schema(2)["properties"]["slots"]
    assert (two["minItems"], two["maxItems"]) == (2, 2)
    assert response_schema(0)["properties"]["slots"]["maxItems"] == 0
    assert response_schema(50)["properties"]["slots"]["minItems"] == MAX_SLOTS
    assert response_schema(1)["required"] == ["slots", "instruction", "answer"]
    capped = response_schema(1, max_instruction_chars=50, max_answer_chars=99)["properties"]
    assert (capped["instruction"]["maxLength"], capped["answer"]["maxLength"]) == (50, 99)


# --------------------------------------------------------------------------- v2: excerpt markers, declines
def v2_answer(instruction: str, text: str, compatible: bool = True) -> str:
    return json.dumps({"compatible": compatible, "slots": [], "instruction": instruction, "answer": text})


def test_v2_puts_the_document_before_the_template_so_requests_share_a_prefix():
    """Two templates for one document: the messages agree up to and including the document."""
    spec = load_prompt("instantiate.v2")
    check_prompt(spec)
    a = build_messages(spec, TEMPLATE, SOURCE, 3000)
    b = build_messages(spec, "What will <fi>a group</fi> vote on?", SOURCE, 3000)
    assert a[:-1] == b[:-1]
    last_a, last_b = a[-1]["content"], b[-1]["content"]
    shared = f'DOCUMENT:\n"""\n{SOURCE}\n"""\nTEMPLATE: '
    assert last_a.startswith(shared) and last_b.startswith(shared) and last_a != last_b


def test_v2_examples_are_honest():
    """Every example answer of instantiate.v2 resolves against its own document (or declines)."""
    spec = load_prompt("instantiate.v2")
    outcomes = [
        evaluate_instantiation(json.dumps(ex.output), ex.input["document"], RULES).reason for ex in spec.examples
    ]
    assert outcomes == [None, "incompatible"]


def test_marker_answer_is_expanded_and_grounded():
    """A marker answer passes with the expanded text, full grounding and its excerpt share."""
    parsed = v2_answer(
        "Why are Qantas maintenance workers advised to reject the offer?",
        "They were told: <excerpt>Unions will advise<...>a wage freeze.</excerpt>",
    )
    check = evaluate_instantiation(parsed, SOURCE, RULES)
    assert check.reason is None
    assert (
        check.answer
        == "They were told: Unions will advise members to reject the offer because it includes a wage freeze."
    )
    assert check.excerpt_share == pytest.approx(81 / 97)  # 16 connecting characters
    assert (check.grounding, check.answer_tokens) == (pytest.approx(14 / 17), 17)


@pytest.mark.parametrize(
    ("parsed", "reason", "detail"),
    [
        (v2_answer("", "", compatible=False), "incompatible", "the model answered compatible: false"),
        ("null", "incompatible", "the model answered null: the template does not fit"),
        (v2_answer("Why?", "<excerpt>offer<...>wage freeze.</excerpt>"), "excerpt_ambiguous",
         "2 spans match <excerpt>offer<...>wage freeze.</excerpt>"),
        (v2_answer("Why?", "<excerpt>Pilots will<...>wage freeze.</excerpt>"), "excerpt_unresolved",
         "start words not in the text: <excerpt>Pilots will<...>wage freeze.</excerpt>"),
    ],
)  # fmt: skip
def test_declines_and_bad_markers_are_rejected(parsed, reason, detail):
    """compatible:false / null decline; ambiguous and unresolved markers reject with the marker in the detail."""
    check = evaluate_instantiation(parsed, SOURCE, RULES)
    assert (check.reason, check.detail) == (reason, detail)


def test_marker_beyond_the_shown_text_is_unresolved():
    """A marker naming words past max_source_chars cannot resolve: the model never saw them."""
    parsed = v2_answer("Why?", "<excerpt>Unions will advise<...>a wage freeze.</excerpt>")
    check = evaluate_instantiation(parsed, SOURCE, InstantiateRules(max_source_chars=150))
    assert check.reason == "excerpt_unresolved"


def test_by_construction_parts_are_rendered_to_markers():
    """An answer given as {lead, first, last} parts is read as markers and expanded."""
    parsed = json.dumps(
        {"compatible": True, "slots": [], "instruction": "Why reject?",
         "answer": [{"lead": "", "first": "Unions will advise", "last": "a wage freeze."}]}
    )  # fmt: skip
    check = evaluate_instantiation(parsed, SOURCE, RULES)
    assert (check.reason, check.excerpt_share) == (None, 1.0)


def test_excerpts_schema_decides_first_and_constrains_markers():
    """The v2 schema asks `compatible` first and forces well-formed markers; a decline is `{"compatible": false}`
    and nothing more (the object closes right after it)."""
    import re

    from fi_spark.instantiate.prompts import EXCERPT_PATTERN, response_schema

    union = response_schema(2, 200, 700, spec=load_prompt("instantiate.v2"))
    schema, decline = union["anyOf"]
    assert schema["required"] == ["compatible", "slots", "instruction", "answer"]
    assert schema["properties"]["compatible"] == {"const": True} and "SlotFill" in union["$defs"]
    assert decline["required"] == ["compatible"] and decline["properties"] == {"compatible": {"const": False}}
    assert schema["properties"]["answer"]["pattern"] == EXCERPT_PATTERN
    assert re.match(EXCERPT_PATTERN, "So <excerpt>a b<...>c d</excerpt>.") and re.match(EXCERPT_PATTERN, "")
    assert not re.match(EXCERPT_PATTERN, "copied text without a marker")


def test_rule_defaults_are_the_config_defaults():
    """InstantiateRules() and InstantiateRules.from_config(InstantiateConfig()) agree: one place per default."""
    from fi_spark.config import InstantiateConfig

    assert InstantiateRules() == InstantiateRules.from_config(InstantiateConfig())


def test_a_decline_and_an_accepted_answer_both_validate_against_the_union_schema():
    """What the LLM client checks an answer against (jsonschema): `{"compatible": false}` alone is valid; a
    decline carrying the other fields is not (the grammar closes the object); an accepted answer is valid."""
    import jsonschema

    from fi_spark.instantiate.prompts import response_schema

    schema = response_schema(1, 200, 700, spec=load_prompt("instantiate.v3"))
    accepted = {"compatible": True, "slots": [{"slot": "a", "value": "b"}], "instruction": "Why?",
                "first_sentence": 1, "last_sentence": 2}  # fmt: skip
    jsonschema.validate({"compatible": False}, schema)
    jsonschema.validate(accepted, schema)
    for bad in ({**accepted, "compatible": False}, {"compatible": True}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
