"""UniRL's imbalance between generation and understanding, from per-image GenEval and QA verdicts.

For images of one task: imbalance = #(GenEval correct and answer wrong) / #(GenEval correct): how often the
model draws the prompt right but cannot tell that it did. The reverse = #(answer correct and GenEval wrong) /
#(answer correct). Lower is better for both; a ratio with an empty denominator is None.
"""

from __future__ import annotations

from typing import Optional, Sequence

from unirl_cli.errors import UnirlError
from unirl_cli.eval.geneval.summary import ordered_tags


def _ratio(numerator: int, denominator: int) -> Optional[float]:
    return numerator / denominator if denominator else None


def _counts(pairs: list[tuple[bool, bool]]) -> dict:
    gen_correct = sum(g for g, _ in pairs)
    und_correct = sum(u for _, u in pairs)
    gen_only = sum(g and not u for g, u in pairs)
    und_only = sum(u and not g for g, u in pairs)
    return {
        "images": len(pairs),
        "generation_accuracy": _ratio(gen_correct, len(pairs)),
        "understanding_accuracy": _ratio(und_correct, len(pairs)),
        "generation_correct": gen_correct,
        "understanding_correct": und_correct,
        "generated_right_answered_wrong": gen_only,
        "answered_right_generated_wrong": und_only,
        "imbalance": _ratio(gen_only, gen_correct),
        "reverse_imbalance": _ratio(und_only, und_correct),
    }


def imbalance_report(results: Sequence[dict], answers: Sequence[dict]) -> dict:
    """Per task and overall counts and ratios; `results` are GenEval records, `answers` have filename/correct.

    Images are joined by filename; every scored image must have an answer. "overall" pools all images (the
    per-task numbers are there for the unweighted view).
    """
    answered = {a["filename"]: bool(a["correct"]) for a in answers}
    missing = [r["filename"] for r in results if r["filename"] not in answered]
    if missing:
        raise UnirlError(f"{len(missing)} scored image(s) have no answer (first: {missing[0]}); "
                         f"re-run with --understanding to answer them")
    by_tag: dict[str, list[tuple[bool, bool]]] = {}
    for record in results:
        by_tag.setdefault(record["tag"], []).append((bool(record["correct"]), answered[record["filename"]]))
    report = {tag: _counts(by_tag[tag]) for tag in ordered_tags(list(by_tag))}
    report["overall"] = _counts([pair for pairs in by_tag.values() for pair in pairs])
    return report


def imbalance_table(report: dict):
    """A rich Table of the report: accuracies and both imbalance directions per task."""
    from rich.table import Table

    from unirl_cli.eval.geneval.summary import TAG_LABELS

    table = Table(title="Generation vs understanding (lower imbalance is better)")
    for name in ("task", "images", "GenEval acc.", "QA acc.", "imbalance", "reverse"):
        table.add_column(name, justify="left" if name == "task" else "right")
    for tag, row in report.items():
        label = "[bold]overall[/]" if tag == "overall" else TAG_LABELS.get(tag, tag)
        table.add_row(label, str(row["images"]), _fmt(row["generation_accuracy"]), _fmt(row["understanding_accuracy"]),
                      _fmt(row["imbalance"]), _fmt(row["reverse_imbalance"]))
    return table


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f}"
