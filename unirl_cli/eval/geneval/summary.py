"""Scores from result records, as GenEval's `summary_scores.py` computes them, and their presentation.

Task score = mean of `correct` over the task's images; overall = unweighted mean of the task scores present
(not the mean over all images). "Correct prompts" (any image of a prompt correct) is reported but is not
the GenEval score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from unirl_cli.errors import UnirlError
from unirl_cli.eval.geneval.prompts import GENEVAL_TAGS

TAG_LABELS = {"single_object": "single object", "two_object": "two objects", "counting": "counting",
              "colors": "colors", "position": "position", "color_attr": "color attribution"}


def ordered_tags(tags: Sequence[str]) -> list[str]:
    """GenEval's six tasks in README order first, then any other tag in first-seen order."""
    unique = list(dict.fromkeys(tags))
    return [t for t in GENEVAL_TAGS if t in unique] + [t for t in unique if t not in GENEVAL_TAGS]


def summarize(records: Sequence[dict]) -> dict:
    """Per-task and overall scores of result records (one per image)."""
    if not records:
        raise UnirlError("there are no scored images; check that the image folder holds PNG samples")
    tasks = {}
    for tag in ordered_tags([r["tag"] for r in records]):
        correct = [bool(r["correct"]) for r in records if r["tag"] == tag]
        tasks[tag] = {"score": sum(correct) / len(correct), "correct": sum(correct), "images": len(correct)}
    by_prompt: dict[str, bool] = {}
    for record in records:
        by_prompt[record["metadata"]] = by_prompt.get(record["metadata"], False) or bool(record["correct"])
    return {
        "overall": sum(t["score"] for t in tasks.values()) / len(tasks),
        "tasks": tasks,
        "images": len(records),
        "prompts": len(by_prompt),
        "correct_images": sum(bool(r["correct"]) for r in records) / len(records),
        "correct_prompts": sum(by_prompt.values()) / len(by_prompt),
        "complete": set(tasks) >= set(GENEVAL_TAGS),
    }


def score_table(summary: dict, title: str = "GenEval"):
    """A rich Table: one row per task, then the overall score; caption = model and settings when known."""
    from rich.table import Table

    table = Table(title=title, caption=run_caption(summary) or None)
    table.add_column("task")
    table.add_column("score", justify="right")
    table.add_column("correct / images", justify="right")
    for tag, task in summary["tasks"].items():
        table.add_row(TAG_LABELS.get(tag, tag), f"{task['score']:.3f}", f"{task['correct']} / {task['images']}")
    overall_label = "overall" if summary.get("complete", True) else "overall (partial: not all 6 tasks)"
    table.add_row(f"[bold]{overall_label}[/]", f"[bold]{summary['overall']:.3f}[/]", f"{summary['images']} images",
                  end_section=True)
    return table


def run_caption(summary: dict) -> str:
    """"model: M | guidance_scale=5.0, temperature=1.0, ... | seed 42, 4 images/prompt" from what is known."""
    parts = [f"model: {summary['model']}"] if summary.get("model") else []
    if summary.get("sampling"):
        parts.append(", ".join(f"{k}={v}" for k, v in summary["sampling"].items() if v not in (None, False, 0, 1.0)
                               or k in ("guidance_scale", "temperature")))
    if summary.get("seed") is not None:
        parts.append(f"seed {summary['seed']}, {summary.get('images_per_prompt')} images/prompt")
    return " | ".join(parts)


def compare_table(first: dict, second: dict, first_name: str, second_name: str):
    """A rich Table of two summaries side by side with B - A per task and overall."""
    from rich.table import Table

    table = Table(title="GenEval comparison")
    table.add_column("task")
    table.add_column(first_name, justify="right")
    table.add_column(second_name, justify="right")
    table.add_column("delta", justify="right")
    for tag in ordered_tags([*first["tasks"], *second["tasks"]]):
        a, b = first["tasks"].get(tag, {}).get("score"), second["tasks"].get(tag, {}).get("score")
        table.add_row(TAG_LABELS.get(tag, tag), _cell(a), _cell(b), _delta(a, b))
    table.add_row("[bold]overall[/]", _cell(first["overall"]), _cell(second["overall"]),
                  _delta(first["overall"], second["overall"]))
    if "understanding" in first and "understanding" in second:  # both made with --understanding
        for key, label in (("understanding_accuracy", "QA accuracy"), ("imbalance", "imbalance (lower is better)")):
            a, b = first["understanding"]["overall"][key], second["understanding"]["overall"][key]
            table.add_row(label, _cell(a), _cell(b), _delta(a, b, higher_is_better=key != "imbalance"))
    return table


def _cell(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f}"


def _delta(a: Optional[float], b: Optional[float], higher_is_better: bool = True) -> str:
    if a is None or b is None:
        return "-"
    diff = b - a
    better = diff > 0 if higher_is_better else diff < 0
    color = "white" if diff == 0 else "green" if better else "red"
    return f"[{color}]{diff:+.3f}[/]"


def save_chart(summary: dict, path: str | Path, title: str = "GenEval") -> None:
    """A bar chart PNG of the task scores and the overall score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from unirl_cli.fileio import atomic_path

    labels = [TAG_LABELS.get(t, t) for t in summary["tasks"]] + ["overall"]
    scores = [t["score"] for t in summary["tasks"].values()] + [summary["overall"]]
    figure, axis = plt.subplots(figsize=(8, 4))
    bars = axis.bar(labels, scores, color=["#4c72b0"] * (len(labels) - 1) + ["#dd8452"])
    axis.bar_label(bars, labels=[f"{s:.2f}" for s in scores], padding=2)
    axis.set_ylim(0, 1.08)
    axis.set_ylabel("fraction of images correct")
    axis.set_title(title if not summary.get("model") else f"{title}: {summary['model']}")
    axis.tick_params(axis="x", labelrotation=20)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def load_summary(path: str | Path) -> dict:
    """A summary from a run folder (summary.json or results.jsonl in it), a summary.json, or a results.jsonl."""
    import json

    from unirl_cli.eval.geneval.evaluate import read_records

    path = Path(path)
    if path.is_dir():
        if (path / "summary.json").is_file():
            path = path / "summary.json"
        elif (path / "results.jsonl").is_file():
            path = path / "results.jsonl"
        else:
            raise UnirlError(f"'{path}' holds neither summary.json nor results.jsonl; pass a scored run folder")
    if path.suffix == ".json":
        try:
            summary = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UnirlError(f"'{path}' is not a readable summary JSON ({err})") from err
        if "tasks" not in summary or "overall" not in summary:
            raise UnirlError(f"'{path}' is not a unirl GenEval summary (no tasks/overall)")
        return summary
    return summarize(read_records(path))
