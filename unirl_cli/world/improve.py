"""`unirl world improve`: one UniRL self-improvement run in the shapes world, scored before and after.

Evaluates the starting model on the shapes suite (with its understanding, for the imbalance metric), trains
it with `unirl train grpo|sft` on a recipe (self-reward only: no detector in the loop), evaluates the final
checkpoint the same way, and returns both summaries. Each stage writes its usual run folder under `out_dir`
(`before/`, `train/`, `after/`), so a rerun with the same settings reuses the finished evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from unirl_cli.errors import UnirlError


@dataclass
class ImprovementRun:
    """Summaries of the starting and trained model, and where the training run wrote its outputs."""

    before: dict
    after: dict
    train_dir: Path
    checkpoint: Path
    metrics: list
    objects_before: float = float("nan")  # detected objects per evaluation image
    objects_after: float = float("nan")


def default_recipe(model: str | None, method: str) -> str:
    """The shipped recipe for `method` on a shapes-world `model`: mini-<method> for a Janus (and when no model
    is named), mini-showo-<method> for a Show-o (`mini-showo` or a folder holding one)."""
    from unirl_cli.models.registry import PACKAGED_MODELS, detect_family

    if model is None:
        return f"mini-{method}"
    packaged = PACKAGED_MODELS.get(model.lower())
    if packaged is not None:
        family = packaged.family
    elif Path(model).is_dir():
        family = detect_family(model)
    else:
        raise UnirlError(f"--model '{model}' is neither a shapes-world model ({', '.join(PACKAGED_MODELS)}) nor a "
                         f"folder; pass one of those or a folder written by `unirl world pretrain` or a training run")
    return "mini-showo-" + method if family == "showo" else f"mini-{method}"


def evaluate_shapes(model: str, out_dir: Path, seed: int, reporter=None) -> dict:
    """Shapes-suite GenEval of `model` with `--understanding` into `out_dir`; the summary dict."""
    from unirl_cli.eval.geneval.config import EvalGenevalConfig
    from unirl_cli.eval.geneval.pipeline import run_geneval, silent_reporter
    from unirl_cli.models.loading import load_model

    config = EvalGenevalConfig(model=model, out_dir=str(out_dir), suite="shapes", understanding=True, seed=seed,
                               batch_size=32, device="cpu", dtype="float32")
    return run_geneval(config, load_model, reporter or silent_reporter).summary


def objects_per_image(eval_dir: Path) -> float:
    """Mean number of objects the world's detector finds in an evaluation folder's images.

    The prompts ask for 1.8 objects on average; a model that scatters extra shapes passes GenEval's two-object
    and colour rules more often (extras are allowed), so a rising score with rising clutter is not progress.
    """
    from PIL import Image

    from unirl_cli.eval.geneval.config import GenevalThresholds
    from unirl_cli.eval.shapes.suite import detect_images

    cutoff, counts = GenevalThresholds().threshold, []  # GenEval's own cut-off for keeping a detection
    for path in sorted(Path(eval_dir).glob("*/samples/*.png")):
        with Image.open(path) as image:
            counts.append(sum(1 for found in detect_images([image])[0] if found.score > cutoff))
    return sum(counts) / len(counts) if counts else float("nan")


def run_improvement(method: str, recipe: Path, out_dir: Path, overrides: list[str], eval_seed: int = 42,
                    log: Callable[[str], None] = print, reporter=None, overwrite: bool = False) -> ImprovementRun:
    """Evaluate, train with `recipe` + `overrides` into `out_dir/train`, evaluate the final checkpoint.

    A finished `before/` evaluation is reused; a training run already in `out_dir/train` is refused unless
    `overwrite` (then it and its `after/` evaluation are replaced)."""
    import shutil

    from unirl_cli.config import load_config
    from unirl_cli.train.config import TrainConfig
    from unirl_cli.train.checkpoint import check_run_folder
    from unirl_cli.train.loop import train

    out_dir = Path(out_dir)
    train_dir = out_dir / "train"
    config = load_config(TrainConfig, recipe, [*overrides, f"method={method}", f"output_dir={train_dir}",
                                                "save_every=0", "keep_last=1"])
    check_run_folder(train_dir, resuming=False, overwrite=overwrite, can_resume=False)
    log(f"evaluating {config.model} before training (shapes suite, {out_dir / 'before'})")
    before = evaluate_shapes(config.model, out_dir / "before", eval_seed, reporter)
    log(f"training: unirl train {method} --config {recipe} {' '.join(overrides)} (run folder {train_dir})")
    result = train(config, overwrite=overwrite)
    if result.last_checkpoint is None:
        raise UnirlError(f"the training run in {train_dir} saved no checkpoint")
    if overwrite:  # the earlier run's evaluation would otherwise be reused as this one's
        shutil.rmtree(out_dir / "after", ignore_errors=True)
    log(f"evaluating the trained checkpoint {result.last_checkpoint}")
    after = evaluate_shapes(str(result.last_checkpoint), out_dir / "after", eval_seed, reporter)
    return ImprovementRun(before, after, train_dir, result.last_checkpoint, result.metrics,
                          objects_per_image(out_dir / "before"), objects_per_image(out_dir / "after"))
