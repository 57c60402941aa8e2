"""fi_spark.instantiate.pair_gates: filled instructions, slot coverage, headings and fragments (literal rows)."""

from __future__ import annotations

from fi_spark.instantiate.pair_gates import (
    drop_heading_lines,
    empty_values,
    fill_template,
    fragment,
    instruction_key,
    values_missing_from,
)


def test_fill_template_capitalizes_an_opening_slot() -> None:
    """The instruction is the template with its values; a slot opening a sentence is capitalized."""
    assert fill_template("<fi>a person</fi> was born where?", ["marie Curie"]) == "Marie Curie was born where?"
    assert fill_template("Who was <fi>a famous person</fi>?", [" Marie Curie "]) == "Who was Marie Curie?"


def test_empty_values_catch_copied_descriptions() -> None:
    """A value that is empty or the slot's own description fills nothing."""
    assert empty_values(["a famous person"], ["A famous person"]) == ["a famous person"]
    assert empty_values(["a city", "a year"], ["Paris"]) == ["a year"]
    assert empty_values(["a city"], ["Paris"]) == []


def test_values_missing_from_reads_content_words() -> None:
    """A value is found by its content words, any case; stopwords do not count."""
    doc = "The Archimedes Palimpsest is a parchment codex palimpsest."
    assert values_missing_from(["the archimedes palimpsest"], doc) == []
    assert values_missing_from(["white onions"], doc) == ["white onions"]
    assert values_missing_from(["Archimedes manuscript"], doc, min_share=0.5) == []


def test_heading_lines_are_dropped_from_an_answer() -> None:
    """`Agriculture\\n\\nTop crops...` -> the answer starts at the sentence (issue #18: answers began with titles)."""
    shown = "Agriculture\n\nTop agricultural products are sugar cane and maize. Rice follows."
    start = drop_heading_lines(shown, 0, len(shown))
    assert shown[start:] == "Top agricultural products are sugar cane and maize. Rice follows."
    assert drop_heading_lines("Agriculture\n\n", 0, 11) == 0  # nothing but a heading: unchanged


def test_fragment() -> None:
    """An answer is whole sentences: not a heading alone, not cut at either end."""
    assert fragment("Agriculture") is not None
    assert fragment("and then the court must first of") is not None
    assert fragment("The court must first decide.") is None
    assert fragment('He said "go."') is None


def test_instruction_key_ignores_case_and_punctuation() -> None:
    """Repeats are counted on the request, not its spelling."""
    assert instruction_key("Who was Marie Curie?") == instruction_key("who was  marie curie")


# Literal rows from bench/labeled/ (Dolly and other real data, SmolLM2-135M): what each gate keeps and rejects.
def test_answer_type_rows_from_the_labeled_set() -> None:
    """A definition opens by defining the entity; a `when` answer holds a time; a `how many` answer a number."""
    from fi_spark.instantiate.pair_gates import answer_type_problem

    king = "Stephen Edwin King (born September 21, 1947) is an American author of horror, supernatural fiction."
    assert answer_type_problem("Who is Stephen Edwin King?", king, ["Stephen Edwin King"]) is None  # kept
    bibeau = "The Walrus and the Whistleblower is a 2020 Canadian documentary film directed by Nathalie Bibeau."
    assert answer_type_problem("Who is Nathalie Bibeau?", bibeau, ["Nathalie Bibeau"]) is not None  # dolly-...
    gagarin = "Russian cosmonaut Yuri Gagarin became the first human to orbit the Earth."
    assert answer_type_problem("When did the Soviet Union gain its independence?", gagarin, ["the Soviet Union"])
    assert answer_type_problem("How many cats did James have?", "James grew up playing basketball.", ["James"])


def test_question_coverage_rows_from_the_labeled_set() -> None:
    """The answer must mention what the template asks about the entity, not only the entity (labeled junk)."""
    from fi_spark.instantiate.pair_gates import question_coverage

    template = "When did <fi>a sovereign state</fi> gain its independence?"
    assert question_coverage(template, "The United Kingdom and France declared war on Germany on 3 September.") == 0
    assert question_coverage(template, "Kenya gained independence from Britain in 1963.") == 1.0
    assert question_coverage("Who is <fi>a famous person</fi>?", "Anything at all.") == 1.0  # nothing to cover


def test_fill_template_fixes_articles_and_agreement() -> None:
    """`the <fi>..</fi>` + `the Gini coefficient` and `Who are` + one person's name read as English."""
    assert fill_template("Who prepares the <fi>an index</fi>?", ["the Gini coefficient"]) == (
        "Who prepares the Gini coefficient?"
    )
    assert fill_template("Who are <fi>a group</fi>?", ["Stephen Edwin King"]) == "Who is Stephen Edwin King?"
    assert fill_template("Who are <fi>a group</fi>?", ["the Lumières"]) == "Who are the Lumières?"


def test_values_that_name_nothing_of_their_own() -> None:
    """Labeled junk from the Dolly run: `Who are The book?`, `which weighs more, A Arctic or A Arctic?`."""
    assert empty_values(["a famous person"], ["The book"]) == ["a famous person"]
    assert empty_values(["a cold liquid", "a hot liquid"], ["Arctic", "Arctic"]) == ["a hot liquid"]
    assert empty_values(["a sovereign state"], ["the Netherlands"]) == []
    assert fill_template("What are common ingredients of <fi>a dish</fi>?", ["A grilled cheese sandwich"]) == (
        "What are common ingredients of a grilled cheese sandwich?"
    )


def test_a_bare_what_is_question_fits_any_value() -> None:
    """`What is Linux?` from `What is <fi>a small fruit</fi>?` is a fine request (labeled: kept); a template that
    asks more (`What is <fi>a game</fi> based on?`) still needs a value of its slot's kind."""
    from fi_spark.instantiate.pair_gates import any_kind

    assert any_kind("What is Linux?", "What is <fi>a small fruit</fi>?")
    assert not any_kind("What is Linux based on?", "What is <fi>a game</fi> based on?")
    assert not any_kind("Who is Team effectiveness?", "Who is <fi>a famous person</fi>?")
    assert fill_template("What are <fi>a substance</fi>?", ["An oil"]) == "What is an oil?"


def test_a_definition_is_about_the_value() -> None:
    """Exported junk of the sample run: `What is process mining?` answered by `Input for process mining is an
    event log.` -- the sentence names it but defines something else."""
    from fi_spark.instantiate.pair_gates import answer_type_problem

    assert answer_type_problem(
        "What is Process mining?", "Input for process mining is an event log.", ["Process mining"]
    )
    gini = "In economics, the Gini coefficient, also known as the Gini index, is a measure of dispersion."
    assert answer_type_problem("What is the Gini coefficient?", gini, ["the Gini coefficient"]) is None
    assert fill_template("What is <fi>a sport</fi>", ["Cricket"]) == "What is Cricket?"
