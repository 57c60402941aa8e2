"""The report page: one self-contained HTML file next to its PNG plots (relative links, no scripts, no CDN).

Consumes `ReportData` and the plot files; every section either shows its plot and numbers or says
which table is missing, so a report of a half-run pipeline is still useful. All text from the data is
escaped.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence

from fi_spark.report.data import Histogram, ReportData

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}
h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;
vertical-align:top}th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}.muted{color:#777}.sample{background:#fafafa;
border:1px solid #e5e5e5;padding:.6em;margin:.6em 0;white-space:pre-wrap}
"""


def _esc(value: object) -> str:
    return html.escape(str(value))


def _cell(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{_esc(value if value is not None else '-')}</td>"
    if isinstance(value, int):
        return f'<td class="n">{value:,}</td>'
    if isinstance(value, float):
        return f'<td class="n">{value:.3g}</td>' if abs(value) < 1e3 else f'<td class="n">{value:,.0f}</td>'
    return f"<td>{_esc(value)}</td>"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(plots: dict[str, str | None], name: str, alt: str) -> str:
    path = plots.get(name)
    return f'<img src="{_esc(os.path.basename(path))}" alt="{_esc(alt)}">' if path else ""


def _missing(what: str) -> str:
    return f'<p class="muted">Not available yet: {_esc(what)}.</p>'


def _hist_table(hist: Histogram | None) -> str:
    if hist is None:
        return ""
    stats = [("rows", hist.total), ("mean", hist.mean)] + list(hist.quantiles.items())
    return table([k for k, _ in stats], [[v for _, v in stats]])


def cost_section(data: ReportData, plots: dict[str, str | None]) -> str:
    """The ledger's spend per LLM stage, per kept pair, and the GPU-hour / $ estimate (fi_spark.cost)."""
    if not data.cost:
        return _missing("llm_responses table (an LLM stage)")
    r = data.gpu_rates
    kept = data.cost[-1].kept
    rows = [(c.spend.stage, c.spend.prompt_tokens, c.spend.cached_tokens, c.spend.completion_tokens, c.spend.server_s,
             c.server_s_per_pair, c.completion_tokens_per_pair, c.gpu_hours, c.usd) for c in data.cost]  # fmt: skip
    head = ["stage", "prompt tok", "cached tok", "generated tok", "server-s", "server-s / kept pair",
            "generated tok / kept pair", "est. GPU-h", "est. $"]  # fmt: skip
    return (
        _img(plots, "cost", "cost per kept pair by stage")
        + table(head, rows)
        + f"<p class='muted'>{kept:,} kept pairs (judge score at or above the threshold). Server-seconds were "
        "measured on the servers this run used (the ledger's server_ms); GPU-hours and $ are estimated from the "
        f"tokens at {r.gen_tokens_per_s:,.0f} generated and {r.prefill_tokens_per_s:,.0f} uncached prompt tokens/s "
        f"per GPU and ${r.usd_per_gpu_hour:g} per GPU-hour (report.gen_tokens_per_s, report.prefill_tokens_per_s, "
        "report.usd_per_gpu_hour); cached prompt tokens cost no prefill.</p>"
    )


def render_html(data: ReportData, plots: dict[str, str | None], judge_scale: tuple[int, int]) -> str:
    """The report page for `data`, linking the PNGs in `plots` (name -> file in the same folder)."""
    s: list[str] = [f"<h1>fi-spark run report</h1><p class='muted'>Output folder: {_esc(data.output)}</p>"]
    s.append(table(["table", "rows"], sorted(data.tables.items())))
    if data.missing:
        s.append(f"<p class='muted'>Tables not written yet: {_esc(', '.join(data.missing))}.</p>")
    s += [f"<p class='muted'>{_esc(n)}</p>" for n in data.notes]

    s.append("<h2>Rows through each stage</h2>")
    if data.funnel:
        s.append(_img(plots, "funnel", "funnel"))
        s.append(table(["counted", "step", "rows"], [(r.unit, r.step, r.rows) for r in data.funnel]))
    else:
        s.append(_missing("no stage tables"))

    s.append("<h2>Reject reasons</h2>")
    if any(data.rejects.values()):
        s.append(_img(plots, "rejects", "reject reasons"))
        rows = sorted(
            ((t, r, n) for t, reasons in data.rejects.items() for r, n in reasons.items()), key=lambda x: -x[2]
        )
        s.append(table(["table", "reason", "rows"], rows))
    else:
        s.append("<p>No rows were rejected" + (" (or no rejects tables exist yet)." if data.missing else ".") + "</p>")

    s.append("<h2>Deduplication</h2>")
    if data.dedup:
        total = sum(data.dedup.values())
        dup = sum(v for k, v in data.dedup.items() if k.startswith("duplicate"))
        s.append(f"<p>Dedup rate: <b>{dup / total:.2%}</b> of {total:,} input documents were duplicates.</p>")
        s.append(_img(plots, "dedup", "dedup"))
    else:
        s.append(_missing("documents / duplicates tables (prepare_corpus)"))

    for key, title, missing in (
        ("chunk_tokens", "Chunk length (tokens)", "chunks table (prepare_corpus)"),
        ("match_scores", "Match scores", "matches table (match)"),
    ):
        s.append(f"<h2>{title}</h2>")
        hist = getattr(data, key)
        s.append(_img(plots, key, title) + _hist_table(hist) if hist else _missing(missing))

    s.append("<h2>Template usage</h2>")
    usage = data.template_usage
    if usage:
        bank = f" of {usage.bank_size:,} in the bank" if usage.bank_size is not None else ""
        s.append(
            f"<p>{usage.used:,} templates{bank} matched {usage.matches:,} times; Gini {usage.gini:.3f}; "
            f"the most used template took {usage.top_share:.2%} of matches.</p>"
        )
        s.append(_img(plots, "template_usage", "template usage"))
        s.append(table(["template", "matches"], usage.top[:10]))
    else:
        s.append(_missing("matches table (match)"))

    s.append("<h2>Grounding</h2>")
    if data.grounding:
        s.append(
            "<p>Share of answer tokens inside verbatim excerpts of the source (all instantiated pairs, accepted "
            f"and rejected); threshold {data.grounding_threshold}.</p>"
        )
        s.append(_img(plots, "grounding", "grounding") + _hist_table(data.grounding))
    else:
        s.append(_missing("pairs / pair_rejects tables (instantiate)"))

    s.append("<h2>Judge scores</h2>")
    if data.judge_scores is not None:
        s.append(_img(plots, "judge", "judge scores"))
        scores = [(k, v) for k, v in sorted(data.judge_scores.items())]
        s.append(table(["score", "pairs"], scores + [("no verdict", data.judge_failed)]))
        s.append(f"<p>Scale {judge_scale[0]}..{judge_scale[1]}, threshold {data.judge_threshold}.</p>")
    else:
        s.append(_missing("judged table (judge)"))

    s.append("<h2>LLM usage</h2>")
    if data.llm:
        s.append(_img(plots, "llm", "LLM usage"))
        s.append(
            table(
                ["stage", "requests", "failed", "prompt tok", "completion tok", "p50 s", "p95 s", "req/s", "out tok/s"],
                [
                    (
                        x.stage, x.requests, x.failed, x.prompt_tokens, x.completion_tokens,
                        x.latency_ms.get("p50", 0) / 1000, x.latency_ms.get("p95", 0) / 1000,
                        x.requests_per_s, x.completion_tokens_per_s,
                    )
                    for x in data.llm
                ],
            )
        )  # fmt: skip
        s.append(
            "<p class='muted'>Throughput divides by the time between the first and last finished request of each "
            "run (plus one median latency), summed over runs: an estimate from the ledger's timestamps.</p>"
        )
    else:
        s.append(_missing("llm_responses table (an LLM stage)"))

    s.append("<h2>Cost per kept pair</h2>")
    s.append(cost_section(data, plots))

    s.append("<h2>Export</h2>")
    if data.export:
        shards = data.export.get("shards") or []
        s.append(
            table(
                ["file", "split", "rows", "tokens", "bytes"],
                [(x["file"], x["split"], x["rows"], x["tokens"], x["bytes"]) for x in shards],
            )
        )
    else:
        s.append(_missing("export (stats.json)"))

    if data.samples:
        s.append("<h2>Sample pairs</h2>")
        for sample in data.samples:
            meta = ", ".join(f"{k}={v}" for k, v in sample.items() if k not in ("instruction", "answer"))
            s.append(
                f"<div class='sample'><b>User:</b> {_esc(sample.get('instruction', ''))}\n\n"
                f"<b>Assistant:</b> {_esc(sample.get('answer', ''))}\n\n<span class='muted'>{_esc(meta)}</span></div>"
            )
    body = "\n".join(s)
    return f"<!doctype html><html><head><meta charset='utf-8'><title>fi-spark report</title><style>{CSS}</style>" \
        f"</head><body>{body}</body></html>\n"  # fmt: skip
