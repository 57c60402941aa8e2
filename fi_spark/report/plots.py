"""PNG plots of the run report (matplotlib, Agg backend: no display needed, safe in jobs and on clusters).

Each function takes one piece of `ReportData` and a file path, draws one figure and returns the path,
or None when there is nothing to draw. Figures share one size and style so the report reads as a whole.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from fi_spark.cost import CostRow
from fi_spark.report.data import FunnelRow, Histogram, LLMStageStats, TemplateUsage

WIDTH, HEIGHT, DPI = 8.0, 4.2, 110
UNIT_COLORS = {"queries": "#8c6bb1", "documents": "#2b8cbe", "pairs": "#41ab5d"}
BAR = "#3182bd"
ACCENT = "#e6550d"


def _figure(height: float = HEIGHT) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(WIDTH, height), dpi=DPI)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _save(fig: Figure, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _human(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def _label_bars(ax: plt.Axes, bars, values: list[int], total: int | None = None) -> None:  # type: ignore[no-untyped-def]
    top = max(values) if values else 0
    for bar, value in zip(bars, values, strict=True):
        text = f"{value:,}" + (f" ({value / total:.0%})" if total else "")
        ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8)
    ax.set_xlim(0, top * 1.25 if top else 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_funnel(rows: list[FunnelRow], path: str) -> str | None:
    """Horizontal bars, top to bottom in pipeline order, coloured by what is counted."""
    if not rows:
        return None
    fig, ax = _figure(max(2.5, 0.42 * len(rows) + 1.2))
    labels = [f"{r.unit}: {r.step}" for r in rows]
    values = [r.rows for r in rows]
    bars = ax.barh(range(len(rows)), values, color=[UNIT_COLORS.get(r.unit, BAR) for r in rows])
    ax.set_yticks(range(len(rows)), labels, fontsize=9)
    ax.invert_yaxis()
    _label_bars(ax, bars, values)
    ax.set_xlabel("rows")
    ax.set_title("Rows through each stage")
    return _save(fig, path)


def plot_rejects(rejects: dict[str, dict[str, int]], path: str, top: int = 15) -> str | None:
    """The most frequent reject reasons over all rejects tables, as `table: reason`."""
    items = sorted(
        ((f"{table}: {reason}", n) for table, reasons in rejects.items() for reason, n in reasons.items() if n),
        key=lambda kv: -kv[1],
    )[:top]
    if not items:
        return None
    fig, ax = _figure(max(2.5, 0.38 * len(items) + 1.2))
    bars = ax.barh(range(len(items)), [n for _, n in items], color=ACCENT)
    ax.set_yticks(range(len(items)), [label for label, _ in items], fontsize=9)
    ax.invert_yaxis()
    total = sum(n for _, n in items)
    _label_bars(ax, bars, [n for _, n in items], total)
    ax.set_xlabel("rows rejected")
    ax.set_title("Reject reasons" + (f" (top {top})" if len(items) == top else ""))
    return _save(fig, path)


def plot_dedup(dedup: dict[str, int], path: str) -> str | None:
    """What happened to input documents: kept, dropped as duplicates (by method), rejected by quality checks."""
    items = [(k, v) for k, v in dedup.items() if v]
    if not items:
        return None
    fig, ax = _figure(max(2.2, 0.45 * len(items) + 1.2))
    colors = [BAR if k == "kept" else ("#fd8d3c" if k.startswith("duplicate") else "#969696") for k, _ in items]
    bars = ax.barh(range(len(items)), [v for _, v in items], color=colors)
    ax.set_yticks(range(len(items)), [k for k, _ in items], fontsize=9)
    ax.invert_yaxis()
    _label_bars(ax, bars, [v for _, v in items], sum(v for _, v in items))
    ax.set_xlabel("input documents")
    ax.set_title("Documents kept, deduplicated and rejected")
    return _save(fig, path)


def plot_histogram(
    hist: Histogram | None,
    path: str,
    title: str,
    xlabel: str,
    threshold: float | None = None,
    threshold_label: str = "threshold",
) -> str | None:
    """Bars of a precomputed histogram, with the mean and an optional threshold line."""
    if hist is None or not hist.total:
        return None
    fig, ax = _figure()
    widths = [b - a for a, b in zip(hist.edges[:-1], hist.edges[1:], strict=True)]
    ax.bar(hist.edges[:-1], hist.counts, width=widths, align="edge", color=BAR, edgecolor="white", linewidth=0.5)
    if hist.mean is not None:
        ax.axvline(hist.mean, color="#636363", linestyle=":", linewidth=1.2, label=f"mean {hist.mean:.3g}")
    if threshold is not None:
        ax.axvline(threshold, color=ACCENT, linewidth=1.6, label=f"{threshold_label} {threshold:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{title} (n={hist.total:,})")
    if hist.mean is not None or threshold is not None:
        ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def plot_scores(
    scores: dict[int, int] | None, threshold: float | None, path: str, scale: tuple[int, int]
) -> str | None:
    """Judge scores on their integer scale; bars below the threshold are greyed (not in the final set)."""
    if not scores:
        return None
    fig, ax = _figure()
    xs = list(range(scale[0], scale[1] + 1))
    values = [scores.get(x, 0) for x in xs]
    colors = ["#bdbdbd" if threshold is not None and x < threshold else "#41ab5d" for x in xs]
    bars = ax.bar(xs, values, color=colors)
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{value:,}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("judge score")
    ax.set_ylabel("pairs")
    kept = sum(v for x, v in zip(xs, values, strict=True) if threshold is None or x >= threshold)
    ax.set_title(f"Judge scores: {kept:,} of {sum(values):,} at or above threshold {threshold:g}")
    return _save(fig, path)


def plot_template_usage(usage: TemplateUsage | None, path: str) -> str | None:
    """Two panels: the most used templates, and the Lorenz curve of matches over used templates."""
    if usage is None or not usage.matches:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDTH * 1.5, max(HEIGHT, 0.3 * len(usage.top) + 1.5)), dpi=DPI)
    top = usage.top[::-1]
    left.barh(range(len(top)), [n for _, n in top], color=BAR)
    left.set_yticks(range(len(top)), [_short(t, 55) for t, _ in top], fontsize=7)
    left.set_xlabel("matched documents")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_title(f"Most used templates (top {len(top)} of {usage.used:,} used)")
    left.spines[["top", "right"]].set_visible(False)
    xs, ys = [0.0], [0.0]
    templates = sum(c for _, c in usage.uses_histogram) or 1
    matches = sum(u * c for u, c in usage.uses_histogram) or 1
    seen, acc = 0, 0
    for uses, count in usage.uses_histogram:
        seen += count
        acc += uses * count
        xs.append(seen / templates)
        ys.append(acc / matches)
    right.plot(xs, ys, color=BAR, linewidth=2, label=f"templates (Gini {usage.gini:.2f})")
    right.plot([0, 1], [0, 1], color="#969696", linestyle="--", linewidth=1, label="perfectly even")
    right.set_xlabel("share of used templates (least used first)")
    right.set_ylabel("share of matches")
    right.set_title(f"Concentration (top template: {usage.top_share:.1%} of matches)")
    right.legend(frameon=False, fontsize=8, loc="upper left")
    right.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def plot_llm(stats: list[LLMStageStats], path: str) -> str | None:
    """Per LLM stage: tokens in/out, latency percentiles and completion throughput, side by side."""
    if not stats:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(WIDTH * 1.5, HEIGHT), dpi=DPI)
    names = [s.stage for s in stats]
    xs = range(len(stats))
    tok, lat, thr = axes
    tok.bar(xs, [s.prompt_tokens for s in stats], color=BAR, label="prompt")
    tok.bar(
        xs,
        [s.completion_tokens for s in stats],
        bottom=[s.prompt_tokens for s in stats],
        color=ACCENT,
        label="completion",
    )
    tok.set_title("Tokens")
    tok.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _human(v)))
    tok.legend(frameon=False, fontsize=8)
    for i, key in enumerate(("p50", "p95", "p99")):
        lat.bar(
            [x + (i - 1) * 0.27 for x in xs], [s.latency_ms.get(key, 0) / 1000 for s in stats], width=0.27, label=key
        )
    lat.set_title("Request latency (s)")
    lat.legend(frameon=False, fontsize=8)
    thr.bar(xs, [s.completion_tokens_per_s for s in stats], color="#41ab5d")
    thr.set_title("Completion tokens / s")
    for ax in axes:
        ax.set_xticks(list(xs), names, fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def plot_cost(rows: list[CostRow], path: str) -> str | None:
    """Per LLM stage: server-seconds and generated tokens per kept pair; None before any pair was kept."""
    stages = [r for r in rows if r.spend.stage != "total"]
    if not stages or not rows[-1].kept:
        return None
    total = rows[-1]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH * 1.2, HEIGHT), dpi=DPI)
    names, xs = [r.spend.stage for r in stages], list(range(len(stages)))
    panels = (
        ("server-seconds per kept pair", [r.server_s_per_pair or 0.0 for r in stages], BAR),
        ("generated tokens per kept pair", [r.completion_tokens_per_pair or 0.0 for r in stages], ACCENT),
    )
    for ax, (title, values, color) in zip(axes, panels, strict=True):
        bars = ax.bar(xs, values, color=color)
        for bar, value in zip(bars, values, strict=True):
            text = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), text, ha="center", va="bottom", fontsize=8)
        ax.set_xticks(xs, names, fontsize=9)
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)
    usd = total.usd_per_pair or 0.0
    fig.suptitle(f"Cost per kept pair by stage ({total.kept:,} kept pairs; est. ${usd * 1e6:,.2f} per million pairs)",
                 fontsize=10)  # fmt: skip
    return _save(fig, path)
