"""Word tokens: the one tokenization the text measures compare (grounding, decontamination, matching rules).

Unicode NFKC, case-folded; tokens are runs of letters/digits (``[^\\W_]+``), and every CJK / kana / hangul
character is a token on its own (those scripts have no spaces). Punctuation, markup and whitespace are not
tokens, so ``"Paris, France."`` and ``"Paris France"`` are the same two tokens. Pure Python.
"""

from __future__ import annotations

import re
import unicodedata

# Ideographs, kana, hangul syllables: one token per character. Everything else: runs of letters/digits.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[{CJK}]|[^\W_{CJK}]+")


def word_tokens(text: str) -> list[str]:
    """The tokens the grounding and decontamination measures compare (see module docstring)."""
    return _TOKEN_RE.findall(unicodedata.normalize("NFKC", text or "").casefold())
