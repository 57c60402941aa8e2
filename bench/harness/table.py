"""Printing the benches' tables: a Markdown table, a ratio that says n/a instead of dividing by nothing, growth."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; a row of one cell is a note spanning the table (a peer without a figure)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    print(markdown_table(headers, rows), flush=True)


def ratio(numerator: float | None, denominator: float | None, fmt: str = ".2f") -> str:
    """numerator / denominator formatted, or "n/a" when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return "n/a"
    return format(numerator / denominator, fmt)


def growth(small: float, big: float, n_small: int, n_big: int) -> float:
    """(t(M) / t(N)) / (M / N): 1.0 is linear in the size, below 1 fixed costs dominate, above 1 superlinear."""
    return (big / small) / (n_big / n_small) if small > 0 else float("nan")
