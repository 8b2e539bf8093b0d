"""The scale scripts that cannot run at full size here stay runnable: each runs its tiny mode end to end."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.slow
def test_gpu_check_runs_every_phase_on_the_tiny_models(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), "--size", "tiny", "--device", "cpu",
                           "--out", str(out)], capture_output=True, text=True, env=ENV, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    failed = {name: row.get("error") for name, row in report["phases"].items() if not row["ok"]}
    assert not failed and len(report["phases"]) == 5, failed
    assert report["phases"]["fsdp smoke"]["checkpoint"] is True
    assert "| janus sampler vs generate | True |" in done.stdout


def test_full_size_quick_mode_runs_on_the_tiny_models(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "full_size.py"), "--size", "tiny", "--quick",
                           "--threads", "1"], capture_output=True, text=True, env=ENV, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| tiny-janus | load (the download path) |" in done.stdout
    assert "| tiny-showo | 1 MaskGIT step, CFG 5 (1024 tokens) |" in done.stdout


@pytest.mark.slow
def test_full_size_quick_builds_and_loads_the_real_architectures(tmp_path):
    """Janus-Pro-1B (exact) and Show-o-512 with random weights through the path a download takes (~1-2 min)."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / "full_size.py"), "--quick", "--threads", "2"],
                          capture_output=True, text=True, env=ENV, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "janus-pro-1b parameters: 2.077 B" in done.stdout
    assert "| janus-pro-1b | one forward (prompt) |" in done.stdout and "| showo-512 | load (the download path) |" in done.stdout


def test_reward_agreement_scores_a_shipped_mini_both_ways(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "reward_agreement.py"), "--model", "mini-showo",
                           "--prompts-per-tag", "1", "--group-size", "2"],
                          capture_output=True, text=True, env=ENV, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    agreement, grids = done.stdout.split("\n\n")
    rows = [line for line in agreement.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| tag | prompts | self reward | detector |")
    assert len(rows) == 1 + 5 + 1 and rows[-1].startswith("| all | 5 |")  # header, five tags in the training file, all
    values = {line.split(" | ")[0][2:]: float(line.split(" | ")[1].rstrip(" |")) for line in grids.splitlines()[2:]}
    assert values["fragment patches/image"] >= 0 and 0 <= values["grids without fragments"] <= 1
    assert 0 <= values["grid parse counts as the detector"] <= 1


def test_within_group_correlation_follows_the_groups_not_their_means():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from reward_agreement import within_group_correlation
    finally:
        sys.path.remove(str(BENCHMARKS))
    import torch

    first = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    assert within_group_correlation(first, first) == pytest.approx(1.0)
    assert within_group_correlation(first, 1 - first) == pytest.approx(-1.0)
    # Shifting a whole group changes nothing GRPO sees: its advantages are within the group.
    assert within_group_correlation(first, first + torch.tensor([[5.0], [-3.0]])) == pytest.approx(1.0)
    assert math.isnan(within_group_correlation(first, torch.ones_like(first)))  # no spread: undefined


def test_reward_control_replays_a_recipes_first_steps(tmp_path):
    out = tmp_path / "control.jsonl"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "reward_control.py"), "--config", "mini-showo-grpo",
                           "--steps", "2", "--window", "1", "--out", str(out), "prompts_per_step=2", "group_size=2"],
                          capture_output=True, text=True, env=ENV, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2] and all(0.0 <= row["reward/mean"] <= 1.0 for row in rows)
    assert "| 2-2 |" in done.stdout


def test_learning_speed_probe_runs_and_its_red_reward_reads_pixels(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from learning_speed import RedShareReward
    finally:
        sys.path.remove(str(BENCHMARKS))
    from PIL import Image

    from unirl_cli.train.rewards import RolloutBatch

    half = Image.new("RGB", (8, 8), (128, 128, 128))
    half.paste((220, 30, 30), (0, 0, 8, 4))
    images = [Image.new("RGB", (8, 8), (225, 25, 35)), half, Image.new("RGB", (8, 8), (30, 30, 220))]
    scores = RedShareReward()(RolloutBatch(records=[{}] * 3, rollout=None, images=images))
    assert scores.tolist() == pytest.approx([10.0, 5.0, 0.0])
    done = subprocess.run([sys.executable, str(BENCHMARKS / "learning_speed.py"), "--models", "mini-showo",
                           "--rewards", "red", "detector", "--steps", "2", "--window", "1", "--out", str(tmp_path / "runs"),
                           "--transfer", "--transfer-steps", "1", "prompts_per_step=2", "group_size=2"],
                          capture_output=True, text=True, env=ENV, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| mini-showo | red |" in done.stdout and "| 1-1 | 2-2 |" in done.stdout
    transfer = next(line for line in done.stdout.splitlines() if line.startswith("| mini-showo | 0."))
    cells = [cell.strip() for cell in transfer.strip("|").split("|")[1:]]
    assert len(cells) == 6  # before -> after, gain: probe prompts, same shapes and colours, other ones
    for verdicts, gain in zip(cells[::2], cells[1::2]):
        before, after = (float(value) for value in verdicts.split("->"))
        assert 0 <= before <= 1 and 0 <= after <= 1 and float(gain) == pytest.approx(after - before, abs=2e-3)
