"""Values a slot can take from a document: its named phrases, ranked per slot by the run's encoder.

With a prompt that sets `slot_choices: true` (instantiate.v6, the local profile) each slot in the prompt comes
with a short list of phrases copied from the document, the best-fitting first, and the model copies one. A 135M
instantiator asked to fill `<fi>a sovereign state</fi>` freely wrote the slot's own words, phrases that are
not in the document, or things of another kind (`the 2003 boat race`): 150 of 192 Dolly matches were lost that
way (README, "What the sample run gives"). Offered the document's own names, ranked by how well each fits the
slot's description, it picks one that exists; the checks (slot_not_in_source, slot_type_mismatch) still decide.

`document_phrases` is pure Python (capitalized name sequences, a title line, the subject a first sentence
defines); `rank_for_slots` uses the per-process encoder (fi_spark.embed.encoder).
"""

from __future__ import annotations

import re

import numpy as np

from fi_spark.config.embed import EmbedConfig

# A run of capitalized words (allowing short joiners: `Bank of England`, `Leonardo da Vinci`), or an acronym.
_NAME = re.compile(
    r"\b(?:[A-Z][\w'’.-]*[\w])(?:\s+(?:(?:of|de|da|del|des|du|di|von|van|der|for|es|el|al|la|le|y)\s+)?"
    r"[A-Z][\w'’.-]*[\w])*\b"
    r"|\b[A-Z]{2,}\b"
)
_SUBJECT = re.compile(r"^(?P<s>[^,;:()]{3,60}?)\s*(?:\([^)]*\)\s*)?,?\s+(?:is|was|are|were)\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_LEADING = re.compile(r"^(?:The|A|An|In|On|At|For|It|He|She|They|This|These|His|Her|Its|After|Before|During)\s+")
_SKIP = frozenset({"I", "A", "The", "In", "On", "It", "He", "She", "They", "This", "These", "Its", "His", "Her"})
_CALENDAR = frozenset(
    "January February March April May June July August September October November December Monday Tuesday "
    "Wednesday Thursday Friday Saturday Sunday".split()
)
_POSSESSIVE = re.compile(r"['’]s$")


def document_phrases(text: str, limit: int = 12) -> list[str]:
    """Up to `limit` phrases naming things in `text`, in order of first appearance, without repeats: the title
    line ("Title\\n\\nbody"), the subject the first sentence defines ("X (born ...) is ..."), then names."""
    found: list[str] = []
    body = text.strip()
    head, sep, rest = body.partition("\n")
    if sep and len(head.split()) <= 8 and not head.rstrip().endswith((".", "!", "?")):
        found.append(head.strip())
        body = rest.strip()
    first = _SENTENCE.split(body, maxsplit=1)[0] if body else ""
    subject = _SUBJECT.match(first)
    if subject and len(subject.group("s").split()) <= 6:
        found.append(subject.group("s").strip())
    for match in _NAME.finditer(body):
        phrase = _POSSESSIVE.sub("", _LEADING.sub("", match.group(0))).strip()
        starts_sentence = match.start() == 0 or body[: match.start()].rstrip().endswith((".", "!", "?", "\n"))
        if " " not in phrase and (starts_sentence or phrase in _SKIP or phrase in _CALENDAR):
            continue  # a capitalized first word or a month is no name
        if len(phrase) > 1:
            found.append(phrase)
    seen: set[str] = set()
    out = []
    for phrase in found:
        key = phrase.casefold()
        if key not in seen and len(phrase) <= 80:
            seen.add(key)
            out.append(phrase)
    return out[:limit]


def rank_for_slots(cfg: EmbedConfig, descriptions: list[str], phrases: list[str], keep: int = 5) -> list[list[str]]:
    """For each slot description, the `keep` phrases that fit it best (cosine under the encoder), best first."""
    return rank_for_slots_batch(cfg, [descriptions], [phrases], keep)[0]


def rank_for_slots_batch(
    cfg: EmbedConfig, descriptions: list[list[str]], phrases: list[list[str]], keep: int = 5
) -> list[list[list[str]]]:
    """`rank_for_slots` for many requests with one encoder pass over every distinct description and phrase."""
    from fi_spark.embed.encoder import encode, load_encoder

    texts = sorted({t for group in (*descriptions, *phrases) for t in group})
    if not texts:
        return [[[] for _ in d] for d in descriptions]
    vectors = dict(zip(texts, encode(load_encoder(cfg), texts, cfg.batch_size), strict=True))
    out: list[list[list[str]]] = []
    for slots, options in zip(descriptions, phrases, strict=True):
        if not options:
            out.append([[] for _ in slots])
            continue
        matrix = np.stack([vectors[p] for p in options])
        ranked = [np.argsort(-(matrix @ vectors[d]), kind="stable")[:keep] for d in slots]
        out.append([[options[j] for j in order] for order in ranked])
    return out


def slot_list_with_choices(descriptions: list[str], choices: list[list[str]]) -> str:
    """The `{slots}` placeholder with each slot's choices: `1. a famous person (copy one: King | Maine)`."""
    lines = []
    for i, description in enumerate(descriptions, 1):
        options = choices[i - 1] if i - 1 < len(choices) else []
        lines.append(f"{i}. {description}" + (f" (copy one: {' | '.join(options)})" if options else ""))
    return "\n".join(lines) or "(no slots)"
