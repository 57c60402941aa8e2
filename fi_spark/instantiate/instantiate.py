"""Stage `instantiate`: matches + documents + templates -> pairs, pair_rejects (loop: fi_spark.stages.llm_stage).

For every match not decided yet, the LLM fills the template's slots from the matched text and answers
(structured output: fi_spark.instantiate.prompts.response_schema). Each answer is checked (unfilled `<fi>`
tags, empty or short answers, grounding below `instantiate.min_grounding`, with `decontam.eval_paths` an
n-gram shared with an evaluation set) and lands in `pairs` (with its measures and the source span
char_start/char_end), in `pair_rejects` (a reason and a detail with the measured value), or -- transient LLM
failures -- nowhere: counted as `llm_<reason>` and sent again next run (a stored reject would stop the retry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from fi_spark.config.embed import EmbedConfig
from fi_spark.decontam.eval_sets import contamination, load_eval_index
from fi_spark.decontam.overlap import EvalNgramIndex
from fi_spark.instantiate import prompts as gen
from fi_spark.prompting.spec import PromptSpec, load_prompt
from fi_spark.schemas import CHUNKS, DOCUMENTS, MATCHES, PAIR_REJECTS, PAIRS, SLOT_VALUES, TEMPLATES
from fi_spark.section import ConfigError
from fi_spark.stages.base import FunnelStep, StageContext, StageResult, StageTables
from fi_spark.stages.llm_stage import LLM_TABLES, LLMStage, Row, encode, llm_failure
from fi_spark.stages.sources import attach_source_text, candidate_pairs, source_chars
from fi_spark.text.tags import parse_template

STAGE = "instantiate"
TABLES = StageTables(
    reads=(MATCHES, TEMPLATES, DOCUMENTS, CHUNKS),
    writes=(PAIRS, PAIR_REJECTS, *LLM_TABLES),
    funnel=(
        FunnelStep("pairs", "instantiated", ("pairs", "pair_rejects")),  # decided; fewer than matches when sampled
        FunnelStep("pairs", "passed checks", ("pairs",)),
    ),
)


class Instantiate(LLMStage):
    name, key, tables, rejects = STAGE, "pair_id", TABLES, PAIR_REJECTS
    check_columns = ("source_text", "template")
    checked = StructType(
        [StructField(c, StringType()) for c in ("pair_id", "instruction", "answer", "reason", "detail")]
        + [StructField("slot_values", SLOT_VALUES), StructField("grounding", DoubleType())]
        + [StructField(c, IntegerType()) for c in ("answer_tokens", "longest_excerpt")]
        + [StructField("excerpt_share", DoubleType())]
    )  # fmt: skip
    relevance_ddl = "pair_id string, relevance double"

    def setup(self) -> None:
        self.cfg = self.ctx.config.instantiate
        self.spec: PromptSpec = load_prompt(self.cfg.prompt)
        gen.check_prompt(self.spec)
        if self.spec.answer_style == "window" and self.cfg.answer_span != "best":
            raise ConfigError(
                f"prompt {self.cfg.prompt} gives slot values only (answer_style: window): set "
                "instantiate.answer_span=best so the answer window is chosen"
            )

    def pending(self) -> DataFrame:
        """Candidate pairs with no pair and no stored reject yet, with template text, source text and span."""
        read = self.ctx.store.read
        decided = read(PAIRS).select("pair_id").unionByName(read(PAIR_REJECTS).select("pair_id"))
        candidates = candidate_pairs(read(MATCHES))
        pending = candidates.join(decided, "pair_id", "left_anti")
        pending = pending.join(read(TEMPLATES).select("template_id", "template"), "template_id", "left")
        if self.cfg.source == "document":  # the document from its start, not the match's chunk span
            pending = pending.withColumn("char_start", F.lit(None).cast("int")).withColumn(
                "char_end", F.lit(None).cast("int")
            )
        return self.sample(attach_source_text(self.ctx, pending, source_chars(self.ctx)), candidates,
                           self.cfg.sample_pairs)  # fmt: skip

    def requests(self, pending: DataFrame) -> DataFrame:
        rows = pending.where(F.col("source_text").isNotNull()).select("pair_id", "doc_id", "template", "source_text")
        ddl = "key string, messages string, group string, n_slots int"
        return rows.mapInPandas(partial(_requests, self.spec, self.cfg.max_source_chars, self.ctx.config.embed), ddl)

    def send(self, requests: DataFrame) -> DataFrame | None:
        """One `complete` per slot count (a handful), each schema asking for exactly that many slot values."""
        results = None
        requests = self.ctx.store.materialize(requests, f"{self.name}/requests")  # built once (choices: encoder)
        for n in sorted(r["n_slots"] for r in requests.select("n_slots").distinct().collect()):
            schema = gen.response_schema(n, self.cfg.max_instruction_chars, self.cfg.max_answer_chars, spec=self.spec)
            run = self.complete(  # sampling: self.llm, the stage's own settings (Config.stage_llm)
                requests.where(F.col("n_slots") == n).drop("n_slots"), response_schema=schema,
                schema_name="instantiation",
            )  # fmt: skip
            results = run if results is None else results.unionByName(run)
        return results

    def checker(self) -> Callable[[Row], Row]:
        rules = gen.InstantiateRules.from_config(self.cfg, self.spec)
        return partial(_check, rules, load_eval_index(self.ctx), self.ctx.config.decontam.check)

    def decide(self, rows: DataFrame) -> DataFrame:
        rows = self.with_relevance(rows)
        return rows.select(
            "pair_id", "doc_id", "chunk_id", "template_id", "instruction", "answer", "slot_values", "grounding",
            "answer_tokens", "longest_excerpt", "excerpt_share", "relevance", "match_score", "match_rank",
            "char_start", "char_end",
            F.coalesce("model", F.lit(self.llm.model or "unknown")).alias("model"),
            F.lit(self.spec.version_tag).alias("prompt_version"), "request_id", "reason", "detail",
        )  # fmt: skip

    def with_relevance(self, rows: DataFrame) -> DataFrame:
        """`relevance` (instruction vs answer, fi_spark.instantiate.relevance) for pairs that passed every check; with
        `answer_span: best` the answer becomes the window of whole sentences closest to the instruction that names
        every slot value (none: `answer_misses_slots`); below `instantiate.min_relevance`: `off_topic`."""
        passed = rows.where(F.col("reason").isNull()).select(
            "pair_id", "instruction", "answer", "source_text", "template", F.to_json("slot_values").alias("values")
        )
        rules = gen.InstantiateRules.from_config(self.cfg, self.spec)
        filled = self.spec.instruction_style == "filled"  # the encoder's gates belong to the filled contract
        min_fit, floor_value = (self.cfg.min_slot_fit, self.cfg.min_relevance) if filled else (-1.0, 0.0)
        scored = passed.mapInArrow(  # Arrow out with the declared types: a batch of all-null columns stays typed
            partial(_relevance_arrow, self.ctx.config.embed, rules, rules.answer_span, min_fit), RELEVANCE_DDL
        )
        scored = scored.select("pair_id", *[F.col(c).alias(f"_new_{c}") for c in scored.columns if c != "pair_id"])
        replaced = ("answer", "answer_tokens", "longest_excerpt", "grounding", "reason", "detail")
        rows = rows.join(scored, "pair_id", "left").select(
            *[F.coalesce(F.col(f"_new_{c}"), F.col(c)).alias(c) if c in replaced else F.col(c) for c in rows.columns],
            F.col("_new_relevance").alias("relevance"),
        )
        floor = F.lit(floor_value)
        low = F.col("reason").isNull() & (F.col("relevance") < floor)
        detail = F.format_string("relevance %.3f < instantiate.min_relevance %.2f", "relevance", floor)
        return rows.withColumn("detail", F.when(low, detail).otherwise(F.col("detail"))).withColumn(
            "reason", F.when(low, F.lit("off_topic")).otherwise(F.col("reason"))
        )


def run(ctx: StageContext) -> StageResult:
    return Instantiate(ctx).run()


def _requests(
    spec: PromptSpec, max_chars: int, embed: EmbedConfig, batches: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    from fi_spark.instantiate.excerpts import shown_text
    from fi_spark.instantiate.slot_choices import document_phrases, rank_for_slots_batch

    for batch in batches:
        templates, texts = [t or "" for t in batch["template"]], list(batch["source_text"])
        choices: list[list[list[str]] | None] = [None] * len(templates)
        if spec.slot_choices:  # the document's phrases, best-fitting first, for each slot: one encoder pass
            descriptions = [parse_template(t).descriptions for t in templates]
            phrases = [document_phrases(shown_text(x, max_chars)) for x in texts]
            choices = list(rank_for_slots_batch(embed, descriptions, phrases))
        messages = [
            encode(gen.build_messages(spec, t, x, max_chars, c))
            for t, x, c in zip(templates, texts, choices, strict=True)
        ]
        slots = [len(parse_template(t or "").slots) for t in batch["template"]]
        yield pd.DataFrame({"key": batch["pair_id"], "messages": messages, "group": batch["doc_id"], "n_slots": slots})


def _check(rules: gen.InstantiateRules, eval_index: EvalNgramIndex | None, fields: tuple[str, ...], row: Row) -> Row:
    """One answer -> the pair's text and measures, or a reject reason with its measured detail."""
    if row["source_text"] is None:
        return {"reason": "missing_source", "detail": "the document or chunk is no longer in the tables"}
    failed = llm_failure(row)
    if failed:
        return failed
    answer = row["parsed"] if row["parsed"] is not None else row["content"]  # released formats answer in text
    check = gen.evaluate_instantiation(answer, row["source_text"], rules, template=row["template"])
    overlap = contamination(eval_index, {name: getattr(check, name) for name in fields}) if not check.reason else None
    if overlap:
        check.reason, check.detail = "contaminated", overlap
    return {f.name: getattr(check, f.name, None) for f in Instantiate.checked.fields[1:]}  # excerpt_share: if measured


RELEVANCE_DDL = (
    "pair_id string, relevance double, answer string, answer_tokens int, longest_excerpt int, grounding double, "
    "reason string, detail string"
)


RELEVANCE_ARROW = pa.schema(
    [("pair_id", pa.string()), ("relevance", pa.float64()), ("answer", pa.string()), ("answer_tokens", pa.int32()),
     ("longest_excerpt", pa.int32()), ("grounding", pa.float64()), ("reason", pa.string()), ("detail", pa.string())]
)  # fmt: skip


def _relevance_arrow(
    cfg: EmbedConfig, rules: gen.InstantiateRules, span: str, min_slot_fit: float, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """`_relevance` over Arrow batches (Sail turns an all-null pandas column into an untyped array it refuses)."""
    for batch in batches:
        for frame in _relevance(cfg, rules, span, min_slot_fit, iter([batch.to_pandas()])):
            full = frame.reindex(columns=RELEVANCE_ARROW.names)
            rows = full.astype(object).where(full.notna(), None).to_dict("records")
            yield pa.RecordBatch.from_pylist(rows, schema=RELEVANCE_ARROW)


def _relevance(
    cfg: EmbedConfig, rules: gen.InstantiateRules, span: str, min_slot_fit: float, batches: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    """Score (and with span `best`, choose) the answers of one batch of accepted pairs with one encoder pass."""
    import json

    from fi_spark.instantiate import excerpts
    from fi_spark.instantiate.grounding import DocumentNgrams
    from fi_spark.instantiate.pair_gates import any_kind
    from fi_spark.instantiate.relevance import best_windows, candidate_windows, relevance, slot_fit

    for batch in batches:
        if span != "best":
            scores = relevance(cfg, batch["instruction"].tolist(), batch["answer"].tolist())
            frame = pd.DataFrame({"pair_id": batch["pair_id"], "relevance": pd.Series(scores, dtype="float64")})
            yield frame  # the other columns: null
            continue
        shown = [excerpts.shown_text(t, rules.max_source_chars) for t in batch["source_text"]]
        values = [[v.get("value", "") for v in json.loads(x or "[]")] for x in batch["values"]]
        asked = batch["instruction"].tolist() if rules.check_answer_type else [None] * len(shown)
        spans = [
            candidate_windows(
                t, v, 3, rules.max_answer_chars, q, rules.min_answer_tokens, tpl, rules.min_question_coverage
            )
            for t, v, q, tpl in zip(shown, values, asked, batch["template"], strict=True)
        ]
        slots = [[v.get("slot", "") for v in json.loads(x or "[]")] for x in batch["values"]]
        fits = slot_fit(cfg, slots, values) if min_slot_fit > -1 else [None] * len(shown)
        texts = [[t[a:b] for a, b in group] for t, group in zip(shown, spans, strict=True)]
        rows: list[tuple[object, ...]] = []
        chosen = best_windows(cfg, batch["instruction"].tolist(), texts)
        rows_in = zip(shown, texts, chosen, fits, batch["instruction"], batch["template"], strict=True)
        for text, group, (best, score), fit, instruction, template in rows_in:
            if fit is not None and fit < min_slot_fit and not any_kind(instruction, template):
                why = f"a slot value is not a thing of its slot's kind: fit {fit:.3f} < {min_slot_fit:.2f}"
                rows.append((None, None, None, None, None, "slot_type_mismatch", why))
                continue
            if best is None:
                typed = rules.check_answer_type or rules.min_question_coverage > 0
                why = "names every slot value" + (" and answers what is asked" if typed else "")
                reason = "answer_type_mismatch" if typed else "answer_misses_slots"
                rows.append((None, None, None, None, None, reason, f"no window of 1-3 whole sentences {why}"))
                continue
            measured = DocumentNgrams(text, rules.min_span).measure(group[best])
            rows.append((score, group[best], measured.answer_tokens, measured.longest_run, measured.coverage, None,
                         None))  # fmt: skip
        frame = pd.DataFrame(rows, columns=[c.split()[0] for c in RELEVANCE_DDL.split(", ")][1:])
        yield frame.assign(pair_id=batch["pair_id"].to_numpy())[[c.split()[0] for c in RELEVANCE_DDL.split(", ")]]
