"""instantiate.source=document through instantiate and judge, against the scripted server of test_pairs_stages."""

from __future__ import annotations

from pairs_inputs import write_inputs  # helper modules beside this file
from pyspark.sql import functions as F
from test_pairs_stages import ScriptedServer, make_ctx

from fi_spark.instantiate import instantiate
from fi_spark.judge import judge
from fi_spark.schemas import JUDGED, PAIRS
from fi_spark.stages.sources import attach_source_text, source_chars

# each document's first sentence: the whole sentences within 120 characters (every document is ~200 long)
SHOWN = {
    "wiki-1": "Agriculture is the cultivation of land and breeding of animals and plants to provide food.",
    "wiki-2": "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France.",
    "news-1": "Qantas maintenance workers will decide by secret ballot whether to accept the airline's offer of an "
    "incentive payment.",
    "news-2": "The Danube is Europe's second-longest river, flowing through ten countries into the Black Sea.",
}


def test_instantiator_and_judge_read_the_document_cut_at_a_sentence(embedded_engine, tmp_path) -> None:
    """Every pair's span is [0, end of the last whole sentence within 120 characters) of its document -- not its
    chunk, which is the whole ~200-character document here -- and the judge reads exactly that text."""
    with ScriptedServer() as server:
        overrides = ["instantiate.source=document", "instantiate.max_source_chars=120", "judge.max_source_chars=120"]
        ctx = make_ctx(embedded_engine, tmp_path, server, overrides)
        write_inputs(ctx, tmp_path)
        made = instantiate.run(ctx)
        judged = judge.run(ctx)
    assert (made.rows_in, made.rows_out, made.rejected) == (12, 6, {"unfilled_slots": 4, "ungrounded": 2})
    assert judged.rows_in == ctx.store.count(JUDGED) == ctx.store.count(PAIRS) == 6
    pairs = ctx.store.read(PAIRS)
    spans = {(r.doc_id, r.char_start, r.char_end) for r in pairs.collect()}
    assert spans <= {(d, 0, len(text)) for d, text in SHOWN.items()}
    assert {d for d, _, _ in spans} == {"wiki-1", "wiki-2", "news-1"}  # the Danube answer is invented: rejected
    seen = attach_source_text(ctx, pairs.select("pair_id", "doc_id", "chunk_id", "char_start", "char_end"),
                              source_chars(ctx))  # fmt: skip
    assert {(r.doc_id, r.source_text) for r in seen.collect()} == {(d, SHOWN[d]) for d, _, _ in spans}
    assert ctx.store.read(JUDGED).where(F.col("score").isNull()).count() == 0
