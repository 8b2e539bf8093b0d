"""`unirl eval geneval` end to end: generate (sharded, resumable), score, summarise, optionally ask the model.

Files of a run folder (beside GenEval's `<index:05d>/` image folders, which the official evaluator reads too):
generation.json (settings), results.jsonl (GenEval's records), summary.json, geneval.png (bar chart),
understanding.jsonl (with --understanding), config.yaml (the resolved config).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from unirl_cli.config import save_config
from unirl_cli.errors import UnirlError
from unirl_cli.eval.geneval.config import EvalGenevalConfig
from unirl_cli.eval.suites import get_suite
from unirl_cli.fileio import write_json_atomic

# A reporter opens a progress bar: reporter(description, total) -> advance(n).
Reporter = Callable[[str, int], Callable[[int], None]]


def silent_reporter(description: str, total: int) -> Callable[[int], None]:
    """A reporter that shows nothing."""
    return lambda n: None


@dataclass
class GenevalRun:
    """What a run produced: the output folder, the summary dict and the files written."""

    out_dir: Path
    summary: Optional[dict]
    generated: int = 0


def resolve_out_dir(config: EvalGenevalConfig) -> Path:
    """`out_dir` when set, else the scored image folder, else outputs/geneval/<model name>."""
    if config.out_dir:
        return Path(config.out_dir)
    if config.images_dir:
        return Path(config.images_dir)
    return Path("outputs") / "geneval" / re.sub(r"[^A-Za-z0-9._-]+", "_", Path(config.model).name or "model")


def distributed_rank_and_world() -> tuple[int, int, object]:
    """(rank, world size, accelerate PartialState) of this process (0, 1 without `accelerate launch`)."""
    from accelerate import PartialState

    state = PartialState()
    return state.process_index, state.num_processes, state


def load_eval_model(config: EvalGenevalConfig, load_model: Callable, state) -> object:
    """The model under test on this process's device (each rank its own GPU under accelerate)."""
    device = config.device
    if device == "auto" and state.num_processes > 1:
        device = str(state.device)
    return load_model(config.model, device=device, dtype=config.dtype, sampling=config.sampling)


def run_geneval(config: EvalGenevalConfig, load_model: Callable, reporter: Reporter = silent_reporter) -> GenevalRun:
    """Run the stages `config.stage` asks for; `load_model(name, device=, dtype=)` loads the model under test."""
    suite = get_suite(config.suite)
    if config.images_dir and config.stage == "generate":
        raise UnirlError("stage=generate with --images has nothing to do; drop --images to generate, or use stage=evaluate")
    if config.stage != "generate" and suite.preflight is not None:
        suite.preflight(config)  # e.g. detector weights present, before hours of generation
    rank, world, state = distributed_rank_and_world()
    out_dir = resolve_out_dir(config)
    model, generated = None, 0
    if config.images_dir is None and config.stage in ("all", "generate"):
        model = load_eval_model(config, load_model, state)
        generated = _generate(config, suite, model, out_dir, rank, world, state, reporter)
    if config.stage == "generate":
        return GenevalRun(out_dir, None, generated)
    if not config.understanding:
        model = None  # frees the generator's memory before the judge loads
    if world > 1 and config.eval_device == "auto":
        config = replace(config, eval_device=str(state.device))
    if config.understanding and model is None and state.is_main_process:
        model = load_eval_model(config, load_model, state)
    summary = evaluate_folder(config, Path(config.images_dir or out_dir), out_dir, suite, model, reporter, state=state)
    return GenevalRun(out_dir, summary, generated)


def _generate(config, suite, model, out_dir: Path, rank: int, world: int, state, reporter: Reporter) -> int:
    from unirl_cli.eval.geneval.generate import (GenerationSettings, check_or_write_settings,
                                                 generate_prompt_images, shard_indices)

    metadata = suite.load_metadata()[: config.limit]
    sampling = model.resolve_sampling(config.sampling)
    settings = GenerationSettings(model=str(config.model), family=model.family, suite=suite.name, seed=config.seed,
                                  images_per_prompt=config.images_per_prompt, sampling=asdict(sampling))
    # Every process checks (so all fail together on a mismatch); only the main one writes.
    check_or_write_settings(out_dir, settings, write=state.is_main_process)
    if state.is_main_process:
        save_config(config, out_dir / "config.yaml")
    state.wait_for_everyone()
    indices = shard_indices(len(metadata), rank, world)
    advance = reporter(f"generating (process {rank + 1}/{world})" if world > 1 else "generating",
                       len(indices) * config.images_per_prompt)
    written = generate_prompt_images(model, metadata, out_dir, indices=indices,
                                     images_per_prompt=config.images_per_prompt, seed=config.seed,
                                     batch_size=config.batch_size, sampling=sampling, on_images=advance)
    state.wait_for_everyone()
    return written


def evaluate_folder(config: EvalGenevalConfig, images_dir: Path, out_dir: Path, suite=None, model=None,
                    reporter: Reporter = silent_reporter, judge=None, matcher=None, state=None) -> Optional[dict]:
    """Score `images_dir`, write results.jsonl, summary.json and the chart into `out_dir`; return the summary.

    Resumable: records are appended to hidden partial files as they are made and reused by a rerun with the
    same judge and thresholds. Under accelerate (`state`), process r scores prompt folders r, r + w, ...;
    the main process merges, writes the files and returns the summary (the others return None). With
    `config.understanding`, `model` also answers each image's question and the imbalance is added.
    `judge` and `matcher` default to the suite's judge and unirl's answer matcher.
    """
    from unirl_cli.eval.geneval.evaluate import (PARTIAL_GLOB, image_jobs, partial_results_path, read_partials,
                                                 score_resumably, scoring_key, write_records)
    from unirl_cli.eval.geneval.layout import check_complete, scan_image_folder
    from unirl_cli.eval.geneval.summary import save_chart, summarize

    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    suite = suite or get_suite(config.suite)
    prompts = scan_image_folder(images_dir, limit=config.limit)
    generated_per_prompt = _run_context(config, images_dir).get("images_per_prompt")
    if generated_per_prompt:
        check_complete(prompts, generated_per_prompt)
    jobs, my_jobs = image_jobs(prompts), image_jobs(prompts[rank::world])
    key = scoring_key(config)
    judge = judge or suite.build_judge(config)
    score_resumably(judge, my_jobs, config.thresholds, config.eval_batch_size, partial_results_path(out_dir, rank),
                    key, done=read_partials(out_dir, key), on_images=reporter("scoring", len(my_jobs)))
    if state is not None:
        state.wait_for_everyone()
        if not state.is_main_process:
            return None
    merged = read_partials(out_dir, key)
    records = [merged[str(path)] for path, _ in jobs]
    write_records(out_dir / "results.jsonl", records)
    summary = {**summarize(records), **_run_context(config, images_dir)}
    if config.understanding:
        matcher = matcher or _suite_matcher(suite)
        summary["understanding"] = _understanding(config, model, jobs, records, out_dir, reporter, matcher)
    write_json_atomic(out_dir / "summary.json", summary)
    save_chart(summary, out_dir / "geneval.png")
    for partial in out_dir.glob(PARTIAL_GLOB):
        partial.unlink()
    return summary


def _run_context(config: EvalGenevalConfig, images_dir: Path) -> dict:
    """Model and settings recorded with the scores (from generation.json when the folder has one)."""
    import json

    from unirl_cli.eval.geneval.generate import SETTINGS_FILE

    context = {"suite": config.suite, "images_dir": str(images_dir), "thresholds": asdict(config.thresholds),
               "detector": config.detector_path or "geneval-detector", "clip": config.clip_path or "geneval-clip"}
    settings_path = images_dir / SETTINGS_FILE
    if settings_path.is_file():
        settings = json.loads(settings_path.read_text())
        context.update(model=settings.get("model"), sampling=settings.get("sampling"), seed=settings.get("seed"),
                       images_per_prompt=settings.get("images_per_prompt"))
    else:
        context.update(model=f"images from {images_dir}")
    return context


def _suite_matcher(suite):
    """unirl's answer matcher over the suite's own objects, or None for the default matcher."""
    if suite.answer_vocabulary is None:
        return None
    from functools import partial

    from unirl_cli.data.matching import match_answer

    return partial(match_answer, vocabulary=suite.answer_vocabulary())


def _understanding(config, model, jobs, records, out_dir: Path, reporter: Reporter, matcher) -> dict:
    from unirl_cli.eval.geneval.evaluate import write_records
    from unirl_cli.eval.geneval.imbalance import imbalance_report
    from unirl_cli.eval.geneval.understanding import answer_images, default_matcher

    if model is None:
        raise UnirlError("--understanding needs the model that drew the images; pass --model")
    answers = answer_images(model, jobs, matcher or default_matcher(), config.batch_size,
                            config.answer_max_new_tokens, on_images=reporter("answering", len(jobs)))
    write_records(out_dir / "understanding.jsonl", answers)
    return imbalance_report(records, answers)
