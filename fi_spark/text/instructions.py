"""Is a request self-contained, and can a verbatim excerpt answer it? Pure text rules, no Spark.

A training pair is only worth keeping when its instruction can be read alone: it carries whatever it
refers to, it holds no placeholder a person would have to fill in, and it is not cut off. These rules read
the text of a request -- a raw query (before genericize spends a call on it), a template's words outside
its slots, an instantiated instruction -- and return a machine-readable reason with the evidence, or None.

- ``placeholder``: template markup that is not a `<fi>` slot: `[keyword]`, `{topic}`, `___`, `<name>`,
  `XXX` (a genericizer that fell back on another slot syntax; an instruction with it asks for nothing).
- ``needs_input``: the request points at an input it does not carry -- "the given sentence", "the following
  text", "this passage", "the words below", or ends with a colon. Self-Instruct-style tasks read this way
  once their pasted input is gone, and no document can supply it: the instantiated instruction would say
  "Expand the given sentence" with no sentence given.
- ``not_extractive``: (only where answers must be verbatim excerpts of a document, `answer_style:
  sentences` / `excerpts`) the request asks for new writing -- a poem, an email, a list of ideas, a
  rewrite, a translation, a classification of listed items -- which no span of a document answers.

Each pattern below lists its cases; they are measured on the labeled pairs (bench/labeled/, precision and
recall per gate: bench/pair_gates.py).
"""

from __future__ import annotations

import re

REASONS = {
    "placeholder": "markup a person would have to fill in (`[keyword]`, `{topic}`, `___`, `<name>`), not a <fi> slot",
    "needs_input": "points at an input it does not carry (`the given sentence`, `the following text`, `this passage`)",
    "not_extractive": "asks for new writing (a poem, an email, ideas, a rewrite), which no excerpt of a document is",
    "not_a_request": "neither a question nor a request: no question mark and no asking word or verb first",
}

_PLACEHOLDER = re.compile(
    r"\[[A-Za-z][^\]\n]{0,40}\]"  # [keyword], [Your Name], [insert topic]
    r"|\{\{?[A-Za-z_][^}\n]{0,40}\}\}?"  # {topic}, {{name}}
    r"|_{3,}"  # ___
    r"|<(?!/?fi>)(?!/?excerpt>)[A-Za-z][\w \-]{0,30}>"  # <name>, <product> (not our own tags)
    r"|\bX{3,}\b|\bxxx\b"
)
# Kinds of pasted input a request can point at.
_INPUT_NOUNS = (
    r"(?:sentences?|text|texts|passages?|paragraphs?|articles?|documents?|stor(?:y|ies)|poems?|lists?|code|"
    r"snippets?|emails?|essays?|reviews?|statements?|tables?|data|dataset|inputs?|words?|phrases?|"
    r"conversations?|dialogues?|excerpts?|quotes?|tweets?|messages?|letters?|sequences?|numbers?|items?|"
    r"examples?|options?|choices?|descriptions?|summar(?:y|ies)|reports?|questions?|claims?|arguments?|"
    r"facts?|events?|recipes?|ingredients?|products?|names?|terms?|keywords?|concepts?|categories|"
    r"functions?|programs?|equations?|expressions?|problems?|information|details?|content|document|array|"
    r"strings?|file|files|query|queries|entit(?:y|ies)|objects?|pairs?|animals?|songs?|books?|movies?|people)"
)
_NEEDS_INPUT = re.compile(
    rf"\b(?:the|these|those|this|each|all)\s+(?:given|following|above|below|provided|attached|"
    rf"mentioned|listed|previous|preceding|specified|supplied|input)\b"
    rf"|\b(?:given|following|above|below|provided|attached)\s+{_INPUT_NOUNS}\b"
    rf"|\b(?:this|these)\s+(?:\w+\s+)?{_INPUT_NOUNS}\b(?!\s+(?:of|about|on|in|from|by|for)\b)"
    rf"|\b(?:as follows|listed below|shown below|see below|below:|above:)"
    rf"|\b{_INPUT_NOUNS}\s+(?:below|above)\b"
    rf"|\bhere (?:is|are)\b"
    rf"|:\s*$",
    re.IGNORECASE,
)
# Requests an excerpt cannot answer: they ask for writing, ideas, a transformation of a text, or a choice
# among listed items. Matched at the start of the request (after an optional polite lead-in).
_LEAD_IN = r"^\s*(?:(?:please|kindly|can you|could you|would you|will you|i want you to|i need you to|help me|" \
           r"i'd like you to|i would like you to|it would be (?:helpful|great|nice) if you could|if you could|" \
           r"i'd appreciate it if you could|i want to|i need to|i'd like to|let's|we need to)[\s,]+)*"  # fmt: skip
_WRITING = re.compile(
    _LEAD_IN + r"(?:write|compose|draft|create|generate|make|design|invent|imagine|come up with|brainstorm|think up|"
    r"think of|suggest|recommend|propose|rewrite|rephrase|paraphrase|translate|convert|correct|fix|edit|improve|"
    r"proofread|shorten|expand|continue|complete|fill in|classify|categori[sz]e|sort|rank|rate|identify which|"
    r"tell me whether|tell me which|decide|pick|choose|find the odd|play|pretend|act as|roleplay|role-play|"
    r"solve|calculate|compute|implement|debug|output|return|format|respond|reply|answer the|give me (?:a |some )?"
    r"(?:list|ideas|examples|names|suggestions|tips|reasons|bulleted|numbered|creative|funny|short|catchy)|"
    r"list (?:some|a few|\d+|three|five|ten)|name (?:some|a few|\d+|three|five|ten)|plan|organize|schedule)\b",
    re.IGNORECASE,
)
_OPINION = re.compile(
    r"\b(?:what do you think|your (?:favou?rite|opinion|view)|do you (?:like|think|prefer|believe)|should i|"
    r"would you rather|in your opinion)\b",
    re.IGNORECASE,
)


_ASKING = frozenset(
    "what who whom whose which when where why how is are was were do does did can could should would will shall may "
    "might has have had tell explain describe give list name summarize summarise define compare identify provide show "
    "find state outline discuss please i in on at for from according".split()
)


def not_a_request(text: str) -> str | None:
    """Why `text` asks for nothing (a statement, a bare phrase: `Bitcoin (i.e. money printing)`), or None."""
    stripped = (text or "").strip()
    first = re.match(r"[^\W\d_]+", stripped)
    if stripped.endswith("?") or (first and first.group(0).lower() in _ASKING):
        return None
    return f"no question mark and {first.group(0) if first else stripped[:20]!r} asks nothing"


def placeholder(text: str) -> str | None:
    """The first placeholder in `text` that is not a `<fi>` slot, or None."""
    found = _PLACEHOLDER.search(text or "")
    return found.group(0) if found else None


def needs_input(text: str) -> str | None:
    """The words by which `text` points at an input it does not carry, or None."""
    found = _NEEDS_INPUT.search((text or "").strip())
    return found.group(0).strip() or found.group(0) if found else None


def asks_for_writing(text: str) -> str | None:
    """The words by which `text` asks for new writing, an opinion or a choice among listed items, or None."""
    for pattern in (_WRITING, _OPINION):
        found = pattern.search((text or "").strip())
        if found:
            return found.group(0).strip()
    return None


def request_problem(text: str, *, extractive: bool = False) -> tuple[str, str] | None:
    """(reason, evidence) for the first rule `text` breaks, in REASONS order; None when it reads alone.

    `extractive`: also refuse requests that ask for new writing (answers must be excerpts of a document).
    """
    for reason, rule in (("placeholder", placeholder), ("needs_input", needs_input)):
        evidence = rule(text)
        if evidence:
            return reason, f"{evidence!r} in {text[:160]!r}"
    if extractive:  # where answers are excerpts: a request for facts a passage can answer
        evidence = asks_for_writing(text)
        if evidence:
            return "not_extractive", f"{evidence!r} in {text[:160]!r}"
        evidence = not_a_request(text)
        if evidence:
            return "not_a_request", f"{evidence} in {text[:160]!r}"
    return None


def query_problem(query: str, *, extractive: bool = False) -> tuple[str, str] | None:
    """(reason, evidence) when a raw query cannot make a usable template, before any LLM call; else None.

    A query that carries its input after its request (a second paragraph: Self-Instruct's instance input,
    a pasted text) is not `needs_input`: the genericizer can slot that input. Only the request itself --
    the first paragraph -- is read for writing tasks.
    """
    text = (query or "").strip()
    request, _, carried = text.partition("\n\n")
    if carried.strip():
        found = placeholder(text)
        if found:
            return "placeholder", f"{found!r} in {text[:160]!r}"
        return (
            ("not_extractive", f"{asks_for_writing(request)!r} in {request[:160]!r}")
            if (extractive and asks_for_writing(request))
            else None
        )
    return request_problem(request, extractive=extractive)
