"""Observability of a run: metrics.jsonl (always), accelerate trackers, sample grids, curves, a live view.

Only the main process calls these. Metric rows are flat dicts of floats keyed like
`reward/mean`, `reward/counting`, `kl`, `loss`, `time/rollout`.
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.live import Live
from rich.table import Table

from unirl_cli.progress import PlainProgress


class MetricsLog:
    """Append-only metrics.jsonl; on resume, rows after the checkpoint's step are dropped first."""

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.is_file():
            kept = [row for row in self.read() if row.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(row) + "\n" for row in kept))

    def write(self, row: dict) -> None:
        """Append one row and flush (a killed run keeps every finished step's metrics)."""
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    def read(self) -> list[dict]:
        """All complete rows so far (a row cut short by a killed process is skipped)."""
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows


def save_sample_grid(images: Sequence, prompts: Sequence[str], path: Path, group_size: int) -> None:
    """One row per prompt, `group_size` images each, plus a prompts.txt beside it."""
    from unirl_cli.inference import make_grid, save_png

    save_png(make_grid(images, columns=group_size), path)
    path.with_suffix(".txt").write_text("\n".join(prompts[::group_size]) + "\n")


def plot_curves(rows: list[dict], out_dir: Path) -> list[Path]:
    """reward.png (mean and per-tag) and kl.png (when logged) from the metric rows; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, keys in (("reward", ["reward/mean"] + sorted({k for r in rows for k in r if k.startswith("reward/tag/")})),
                       ("kl", ["kl"]), ("loss", ["loss"])):
        series = {key: [(r["step"], r[key]) for r in rows if key in r] for key in keys}
        series = {key: points for key, points in series.items() if points}
        if not series:
            continue
        figure, axis = plt.subplots(figsize=(6, 4))
        for key, points in series.items():
            steps, values = zip(*points)
            axis.plot(steps, values, label=key.split("/")[-1], linewidth=2 if key == "reward/mean" else 1)
        axis.set_xlabel("step")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
        if len(series) > 1:
            axis.legend(fontsize=7)
        path = out_dir / f"{name}.png"
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


PLAIN_METRICS = ("reward/mean", "loss", "kl", "und_nll", "images_per_s")


class LiveView:
    """A rich table redrawn after every step (reward by tag, KL, loss, clip fraction, speed, ETA) on a terminal;
    off a terminal, a plain progress line every `plain_every_seconds` (0: none)."""

    def __init__(self, total_steps: int, start_step: int, enabled: bool, console: Console | None = None,
                 window: int = 20, plain_every_seconds: float = 30.0, shown: bool = True) -> None:
        self.total_steps, self.start_step, self.window = total_steps, start_step, window
        # Each step sees only a few prompts per tag, so per-tag rewards are shown over the last `window` steps.
        self.tag_history: dict[str, deque] = {}
        self.started = time.perf_counter()
        self.console = console or Console(stderr=True)
        terminal = self.console.is_terminal
        self.live = (Live(self._table({}, start_step), console=self.console, refresh_per_second=4)
                     if enabled and shown and terminal else None)
        self.plain = (PlainProgress("step", total_steps, plain_every_seconds, start=start_step, stream=self.console.file)
                      if shown and not terminal and plain_every_seconds > 0 else None)

    def __enter__(self) -> "LiveView":
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, row: dict) -> None:
        """Show the metrics of the step just finished."""
        for key, value in row.items():
            if key.startswith("reward/tag/"):
                self.tag_history.setdefault(key, deque(maxlen=self.window)).append(value)
        if self.live is not None:
            self.live.update(self._table(row, row["step"]))
        if self.plain is not None:
            self.plain.update(row["step"], {key: row[key] for key in PLAIN_METRICS if key in row})

    def _table(self, row: dict, step: int) -> Table:
        done = step - self.start_step
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (self.total_steps - step) if done else float("nan")
        table = Table(title=f"step {step}/{self.total_steps}  elapsed {elapsed:.0f}s  ETA {eta:.0f}s", expand=False)
        table.add_column("metric")
        table.add_column("value", justify="right")
        shown = ["reward/mean", "reward/std", "loss", "kl", "clip_fraction", "grad_norm", "lr", "images_per_s",
                 "und_nll", "gen_nll", "answer_reward/mean"]
        for key in shown:
            if key in row:
                table.add_row(key, f"{row[key]:.4g}")
        for key in sorted(self.tag_history):
            values = self.tag_history[key]
            table.add_row(f"reward {key.removeprefix('reward/tag/')} (last {len(values)})", f"{sum(values) / len(values):.3f}")
        phases = [k for k in row if k.startswith("time/") and k != "time/step"]
        if phases:
            table.add_row("seconds", "  ".join(f"{k.removeprefix('time/')} {row[k]:.2f}" for k in phases))
        return table
