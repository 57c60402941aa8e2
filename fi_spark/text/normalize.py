"""Text normalization applied to every document before hashing, filtering and chunking.

Rules, in order: Unicode NFC (so composed and decomposed accents hash alike); CR/CRLF -> LF; control
characters (Unicode category Cc, except tab and newline), BOMs and zero-width spaces removed; tabs,
no-break and other Unicode spaces -> a plain space; runs of spaces folded and lines stripped; three or
more newlines -> one blank line; leading/trailing whitespace stripped. Paragraph structure (single and
double newlines) is kept because chunking and sentence splitting use it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_DROP = {"\ufeff", "\u200b", "\u2060"}
_SPACES = re.compile(r"[^\S\n]+")  # any whitespace except newline (covers \t, \xa0, \u2009, ...)
_MANY_NEWLINES = re.compile(r"\n{3,}")
_WORD = re.compile(r"\w+", re.UNICODE)


def _keep(ch: str) -> bool:
    if ch in "\n\t":
        return True
    if ch in _DROP:
        return False
    return unicodedata.category(ch) != "Cc"


def normalize_text(text: str) -> str:
    """Return the canonical form of ``text`` (see the module docstring for the rules)."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isprintable():
        text = "".join(ch for ch in text if _keep(ch))
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def text_hash(text: str) -> str:
    """sha256 hex of the UTF-8 text: the exact-dedup key and the basis of derived ids."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def count_words(text: str) -> int:
    return len(_WORD.findall(text))
