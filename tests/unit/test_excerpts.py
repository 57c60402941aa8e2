"""Excerpt markers expanded against the shown text (fi_spark.instantiate.excerpts)."""

from __future__ import annotations

import pytest

from fi_spark.instantiate.excerpts import expand, has_markers, render_parts, shown_text

DOC = (
    "The river floods every spring. Farmers plant rice after the water recedes. "
    "The river also carries silt, which makes the fields fertile."
)


def test_unique_marker_expands_to_the_document_span():
    """A marker whose first and last words occur once expands to exactly that span of the document."""
    out = expand("Because <excerpt>Farmers plant<...>water recedes.</excerpt>", DOC)
    assert out.reason is None
    assert out.text == "Because Farmers plant rice after the water recedes."
    assert [(s.doc_start, s.doc_end) for s in out.spans] == [(31, 74)]
    assert out.excerpt_share == pytest.approx(43 / 51)


def test_marker_without_gap_is_an_exact_quote():
    """`<excerpt>words</excerpt>` with no `<...>` names the span that is those words."""
    out = expand("<excerpt>makes the fields fertile</excerpt>.", DOC)
    assert (out.reason, out.text, out.excerpt_share) == (None, "makes the fields fertile.", pytest.approx(24 / 25))


def test_ambiguous_marker_is_rejected_with_the_marker():
    """`The river` starts two spans that end in `fertile.`: the marker does not identify one span."""
    out = expand("<excerpt>The river<...>fertile.</excerpt>", DOC)
    assert out.reason == "excerpt_ambiguous"
    assert out.detail == "2 spans match <excerpt>The river<...>fertile.</excerpt>"
    assert out.text is None


def test_unresolved_marker_is_rejected_with_the_marker():
    """Words that are not in the shown text resolve to nothing."""
    out = expand("<excerpt>Fishermen sail<...>recedes.</excerpt>", DOC)
    assert out.reason == "excerpt_unresolved"
    assert out.detail == "start words not in the text: <excerpt>Fishermen sail<...>recedes.</excerpt>"


def test_start_words_after_end_words_is_unresolved():
    """Both sides occur, but the end words only before the start words: no span, and the detail says so."""
    out = expand("<excerpt>which makes<...>every spring.</excerpt>", DOC)
    assert out.reason == "excerpt_unresolved"
    assert out.detail.startswith("the end words occur only before the start words: <excerpt>which makes")


def test_markers_at_the_document_edges():
    """Spans that start at offset 0 and end at the last character resolve, with nothing cut off."""
    out = expand(
        "<excerpt>The river floods<...>every spring.</excerpt> <excerpt>The river also<...>fertile.</excerpt>", DOC
    )
    assert out.reason is None
    assert [(s.doc_start, s.doc_end) for s in out.spans] == [(0, 30), (75, len(DOC))]
    assert out.text == "The river floods every spring. The river also carries silt, which makes the fields fertile."
    assert out.excerpt_share == pytest.approx((30 + len(DOC) - 75) / len(out.text))


def test_overlapping_spans_are_rejected():
    """Two markers whose document spans overlap would repeat the document's text."""
    out = expand(
        "<excerpt>Farmers plant<...>water recedes.</excerpt> <excerpt>after the water<...>silt,</excerpt>", DOC
    )
    assert out.reason == "excerpt_overlap"
    assert out.detail == (
        "<excerpt>after the water<...>silt,</excerpt> overlaps <excerpt>Farmers plant<...>water recedes.</excerpt>"
    )


@pytest.mark.parametrize(
    ("answer", "detail_start"),
    [
        ("<excerpt>The river <excerpt>floods</excerpt>", "<excerpt> opened inside another"),
        ("the river floods</excerpt>", "</excerpt> without <excerpt>"),
        ("<excerpt>Farmers plant<...>", "unclosed <excerpt>"),
        ("<excerpt><...>recedes.</excerpt>", "expected <excerpt>first words<...>last words</excerpt>"),
        ("<excerpt>a<...>b<...>c</excerpt>", "expected <excerpt>first words<...>last words</excerpt>"),
    ],
)
def test_malformed_markers(answer, detail_start):
    """Nested, stray, unclosed markers and markers with an empty or extra side are malformed, not guessed."""
    out = expand(answer, DOC)
    assert out.reason == "excerpt_malformed" and out.detail.startswith(detail_start)


def test_words_must_match_on_word_boundaries():
    """`plant` inside `plantation` is no occurrence; `cat` does not match inside `concatenate`."""
    doc = "We concatenate strings. The cat sleeps."
    out = expand("<excerpt>cat<...>sleeps.</excerpt>", doc)
    assert (out.reason, out.text) == (None, "cat sleeps.")


def test_unicode_text_and_offsets():
    """Accented, CJK and emoji text resolves by character offsets, with the original characters kept."""
    doc = "Le café crème coûte 3 €. 東京は日本の首都です。 Fin 🎉 du texte."
    out = expand("<excerpt>café<...>€.</excerpt> et <excerpt>東京は<...>首都です。</excerpt>", doc)
    assert out.reason is None
    assert out.text == "café crème coûte 3 €. et 東京は日本の首都です。"
    assert out.excerpt_share == pytest.approx(
        (len("café crème coûte 3 €.") + len("東京は日本の首都です。")) / len(out.text)
    )


def test_tolerant_match_maps_back_to_the_original_characters():
    """Case, whitespace runs and curly quotes differ: the tolerant match finds the span, the output keeps the source."""
    doc = "She said “Don’t   wait”\nand left the Room at Noon."
    out = expand('<excerpt>she said "don\'t wait"<...>the room at noon.</excerpt>', doc)
    assert out.reason is None and out.spans[0].tolerant
    assert out.text == doc


def test_tolerant_match_never_forgives_changed_words():
    """A changed word is not a normalization difference: still unresolved."""
    out = expand("<excerpt>Farmers sow<...>recedes.</excerpt>", DOC)
    assert out.reason == "excerpt_unresolved"


def test_exact_match_is_preferred_over_tolerant():
    """When the exact words occur once, a second case-folded occurrence does not make the marker ambiguous."""
    doc = "Rice grows in water. rice grows in water."
    out = expand("<excerpt>Rice grows in water.</excerpt>", doc)
    assert (out.reason, out.spans[0].doc_start, out.spans[0].tolerant) == (None, 0, False)


def test_answer_without_markers_has_no_share():
    """Plain text passes through unchanged with excerpt_share None (nothing came from markers)."""
    out = expand("  Just words.  ", DOC)
    assert (out.reason, out.text, out.excerpt_share, out.spans) == (None, "Just words.", None, [])
    assert not has_markers("Just words.") and has_markers("x <EXCERPT>y</EXCERPT>")


def test_shown_text_is_the_prompt_cut():
    """shown_text cuts like the prompt does, so a span can only come from what the model saw."""
    assert shown_text(DOC, 40) == "The river floods every spring. Farmers"
    out = expand("<excerpt>Farmers plant<...>recedes.</excerpt>", shown_text(DOC, 40))
    assert out.reason == "excerpt_unresolved"


def test_render_parts_writes_markers():
    """By-construction parts become the marker string the resolver reads."""
    parts = [
        {"lead": "First,", "first": "Farmers plant", "last": "recedes."},
        {"lead": "", "first": "silt,", "last": "silt,"},
    ]
    assert render_parts(parts) == "First, <excerpt>Farmers plant<...>recedes.</excerpt> <excerpt>silt,</excerpt>"
