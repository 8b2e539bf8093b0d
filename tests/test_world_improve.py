"""`unirl world improve`: evaluate, self-improve, evaluate again, print the before/after table."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import run_console_script
from unirl_cli.world.mini import packaged_mini_dir


def _shipped() -> bool:
    try:
        packaged_mini_dir()
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _shipped(), reason="the mini weights are not packaged in this checkout")
def test_improve_runs_end_to_end_on_mini_and_prints_before_and_after(tmp_path):
    out = tmp_path / "improve"
    args = ("world", "improve", "--steps", "2", "--out", str(out), "--threads", "1", "prompts_per_step=2",
            "group_size=2")
    result = run_console_script(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    for text in ("before", "after grpo", "overall", "QA accuracy", "imbalance", "self-reward"):
        assert text in result.stdout, text
    before = json.loads((out / "before" / "summary.json").read_text())
    after = json.loads((out / "after" / "summary.json").read_text())
    assert before["model"] == "mini" and after["model"].endswith("step-000002")
    assert before["prompts"] == after["prompts"] == 134 and "understanding" in after
    assert len((out / "train" / "metrics.jsonl").read_text().splitlines()) == 2
    again = run_console_script(*args)  # a finished run is never overwritten
    assert again.returncode == 2 and "already holds a training run" in again.stderr
    assert "Traceback" not in again.stderr


def test_improve_refuses_bad_input_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    def unirl(*args: str):  # from tmp_path, which has no configs/ folder
        return subprocess.run([sys.executable, "-m", "unirl_cli", "world", "improve", "--out", "x", *args],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})

    for args, message in [(("--method", "ppo"), "not one of grpo, sft"),
                          ((), "no recipe at configs/train/mini-grpo.yaml"),
                          (("--config", "missing.yaml"), "does not exist")]:
        result = unirl(*args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
