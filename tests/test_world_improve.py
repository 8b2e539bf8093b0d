"""`unirl world improve`: evaluate, self-improve, evaluate again, print the before/after table."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import run_console_script
from tests.test_world_mini import _shipped


@pytest.mark.skipif(not _shipped(), reason="the mini weights are not packaged in this checkout")
def test_improve_runs_end_to_end_on_mini_and_prints_before_and_after(tmp_path):
    out = tmp_path / "improve"
    args = ("world", "improve", "--steps", "2", "--out", str(out), "--threads", "1", "prompts_per_step=2",
            "group_size=2")
    result = run_console_script(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    for text in ("before", "after grpo", "overall", "QA accuracy", "imbalance", "objects per image", "self-reward"):
        assert text in result.stdout, text
    before = json.loads((out / "before" / "summary.json").read_text())
    after = json.loads((out / "after" / "summary.json").read_text())
    assert before["model"] == "mini" and after["model"].endswith("step-000002")
    assert before["prompts"] == after["prompts"] == 134 and "understanding" in after
    assert len((out / "train" / "metrics.jsonl").read_text().splitlines()) == 2
    again = run_console_script(*args)  # a finished run is never overwritten
    assert again.returncode == 2 and "already holds a training run (last checkpoint step-000002); pass --overwrite" in again.stderr
    assert "Traceback" not in again.stderr


def test_objects_per_image_counts_what_the_renders_hold(tmp_path):
    from unirl_cli.world.improve import objects_per_image
    from unirl_cli.data.shapes.render import render_scene

    scenes = [{"tag": "counting", "include": [{"class": "square", "count": 3}]},
              {"tag": "two_object", "include": [{"class": "circle", "count": 1}, {"class": "ring", "count": 1}]},
              {"tag": "single_object", "include": [{"class": "cross", "count": 1}]}]
    for index, metadata in enumerate(scenes):
        folder = tmp_path / f"{index:05d}" / "samples"
        folder.mkdir(parents=True)
        render_scene(metadata, seed=index)[0].save(folder / "00000.png")
    assert objects_per_image(tmp_path) == 2.0  # (3 + 2 + 1) / 3
    assert objects_per_image(tmp_path / "empty") != objects_per_image(tmp_path / "empty")  # NaN: no images


def test_improve_refuses_bad_input_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    def unirl(*args: str):  # from tmp_path, which has no configs/ folder: recipes are found in the package
        return subprocess.run([sys.executable, "-m", "unirl_cli", "world", "improve", "--out", "x", *args],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})

    for args, message in [(("--method", "ppo"), "not one of grpo, sft"),
                          (("--config", "mini-grpoo"), "did you mean 'mini-grpo'?"),
                          (("--config", "missing.yaml"), "is neither a file nor a shipped train config")]:
        result = unirl(*args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def mean_self_reward(model, records: list[dict], images_per_prompt: int = 8) -> float:
    """Share of the model's own images (fixed seeds) whose question its own greedy answer gets right."""
    from unirl_cli.data.matching import match_answer

    jobs = [(record, seed) for record in records for seed in range(images_per_prompt)]
    rollout = model.generate_images([r["prompt"] for r, _ in jobs], seeds=[1000 + s for _, s in jobs])
    answers = model.answer_questions(rollout.image_tokens, [r["question"] for r, _ in jobs], max_new_tokens=16)
    return sum(match_answer(r["tag"], r, a) for (r, _), a in zip(jobs, answers)) / len(jobs)


@pytest.mark.skipif(not _shipped(), reason="the mini weights are not packaged in this checkout")
def test_a_short_seeded_grpo_run_on_mini_raises_its_mean_self_reward(tmp_path):
    """GRPO on the image tokens of one training prompt, 32 images a step, 40 steps (the recipe's 150 steps over
    many prompts take minutes: docs/shapes-world.md, 'The self-improvement result'). The self-reward is measured on fresh
    seeds, not on the rollouts trained on."""
    from unirl_cli.config import load_config
    from unirl_cli.models.loading import load_model
    from unirl_cli.train.config import TrainConfig
    from unirl_cli.train.loop import train
    from unirl_cli.train.prompts import load_training_prompts

    prompt_file = tmp_path / "one.jsonl"
    record = next(r for r in map(json.loads, open("unirl_cli/data/shapes/train_prompts.jsonl"))
                  if r["prompt"] == "a photo of a circle and a cross")
    prompt_file.write_text(json.dumps(record) + "\n")
    config = load_config(TrainConfig, "configs/train/mini-grpo.yaml", [
        f"output_dir={tmp_path / 'run'}", "steps=40", f"prompts.file={prompt_file}", "prompts.balance_tags=false",
        "prompts_per_step=1", "group_size=32", "micro_batch_size=32", "optim.lr=3e-4", "log.plots=false",
        "log.sample_every=0"])
    records = load_training_prompts(config.prompts)
    before = mean_self_reward(load_model("mini", device="cpu", dtype="float32"), records, images_per_prompt=32)
    result = train(config)
    after = mean_self_reward(result.policy, records, images_per_prompt=32)
    assert after > before + 0.2, (before, after)
