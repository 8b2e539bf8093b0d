"""Off a terminal, long work prints plain progress lines at a steady pace; tables stay readable at 80 columns."""

import io
import os
import subprocess
import sys

from unirl_cli.progress import PlainProgress, counting_reporter, format_seconds


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_plain_progress_prints_first_then_at_its_pace_then_at_the_end():
    stream, clock = io.StringIO(), Clock()
    line = PlainProgress("step", 10, every_seconds=30, stream=stream, clock=clock)
    for done in range(1, 11):
        clock.now = done * 10.0  # ten seconds a step
        line.update(done, {"loss": 0.5})
    lines = stream.getvalue().splitlines()
    assert lines[0] == "step 1/10 (10%) elapsed 10s ETA 1m30s loss 0.5"
    assert [text.split()[1] for text in lines] == ["1/10", "4/10", "7/10", "10/10"]
    assert lines[-1].startswith("step 10/10 (100%) elapsed 1m40s ETA 0s")


def test_counting_reporter_and_time_format():
    stream = io.StringIO()
    advance = counting_reporter(every_seconds=0, stream=stream)("generating", 4)
    advance(2)
    assert stream.getvalue() == ""  # every_seconds 0 turns the lines off
    advance = counting_reporter(every_seconds=1000, stream=stream)("generating", 4)
    advance(1)
    advance(3)
    assert [line.split()[1] for line in stream.getvalue().splitlines()] == ["1/4", "4/4"]
    assert (format_seconds(59), format_seconds(61), format_seconds(3725), format_seconds(float("nan"))) == (
        "59s", "1m01s", "1h02m", "?")


def test_training_in_a_log_file_prints_progress_lines(tiny_janus_dir, tmp_path):
    log = tmp_path / "train.log"
    with log.open("w") as handle:  # a file, not a terminal: as under nohup or a batch job
        done = subprocess.run([sys.executable, "-m", "unirl_cli", "train", "grpo", "--model", str(tiny_janus_dir),
                               "--out", str(tmp_path / "run"), "--steps", "3", "prompts.num_generated=8",
                               "prompts_per_step=2", "group_size=2", "log.progress_seconds=0.001"],
                              stdout=handle, stderr=subprocess.STDOUT, timeout=300,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    text = log.read_text()
    assert done.returncode == 0, text[-2000:]
    steps = [line.split()[1] for line in text.splitlines() if line.startswith("step ")]
    assert steps == ["1/3", "2/3", "3/3"], text[-2000:]
    assert "reward/mean" in text and "ETA" in text


def test_models_table_keeps_every_hub_id_whole_at_80_columns():
    from unirl_cli.models.registry import MODELS

    done = subprocess.run([sys.executable, "-m", "unirl_cli", "models"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "80", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert all(len(line) <= 80 for line in done.stdout.splitlines())
    for spec in MODELS.values():
        assert spec.repo_id in done.stdout, spec.repo_id
