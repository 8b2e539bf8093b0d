"""A non-editable install works from any folder: recipes, accelerate configs, data files and `mini` ship inside it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`pip install .` (no dependencies: the test environment has them) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--target", str(target), str(ROOT)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path_factory.mktemp("build"))
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def unirl(installed, cwd, *args):
    env = {**os.environ, "PYTHONPATH": str(installed), "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "unirl_cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env)


@pytest.mark.slow
def test_a_wheel_install_runs_from_another_folder(installed, tmp_path):
    probe = unirl(installed, tmp_path, "configs", "path", "mini-grpo")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(installed)), "the config must come from the installed package"
    for name in ("8gpu", "fsdp-cpu", "geneval"):
        assert unirl(installed, tmp_path, "configs", "path", name).returncode == 0, name
    shown = unirl(installed, tmp_path, "train", "grpo", "--config", "mini-grpo", "--show-config")
    assert shown.returncode == 0 and "file: shapes/train_prompts.jsonl" in shown.stdout, shown.stderr[-1000:]
    # The recipe's data file and the packaged mini resolve inside the install, from a folder that has neither.
    check = unirl(installed, tmp_path, "prompts", "check", "shapes/train_prompts.jsonl")
    assert check.returncode == 0 and "530 valid prompts" in check.stdout, check.stderr[-1000:]
    generated = unirl(installed, tmp_path, "generate", "a photo of a red circle", "--model", "mini", "-n", "1",
                      "--out", "img", "--threads", "1")
    assert generated.returncode == 0, generated.stderr[-1000:]
    assert (tmp_path / "img" / "00000.png").is_file()
