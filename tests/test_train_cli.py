"""`unirl train grpo|sft` through the CLI: a short run end to end, and one-line errors before any compute."""

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unirl_cli.cli import app
from unirl_cli.errors import UnirlError

runner = CliRunner()
SMALL = ["prompts.num_generated=8", "prompts_per_step=2", "group_size=2", "micro_batch_size=4", "log.live=false"]


def invoke(*args):
    return runner.invoke(app, ["train", *map(str, args)])


def test_grpo_then_resume_then_sft_from_the_command_line(tiny_janus_dir, tmp_path):
    run_dir = tmp_path / "grpo"
    result = invoke("grpo", "--model", tiny_janus_dir, "--steps", 2, "--output-dir", run_dir, *SMALL, "save_every=1",
                    "log.sample_every=1")
    assert result.exit_code == 0, result.output
    assert (run_dir / "checkpoints" / "step-000002" / "model.safetensors").is_file()
    assert (run_dir / "samples" / "step-000002.png").is_file() and (run_dir / "plots" / "reward.png").is_file()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2]

    resumed = invoke("grpo", "--steps", 3, "--output-dir", run_dir, "--resume")
    assert resumed.exit_code == 0, resumed.output
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]

    sft = invoke("sft", "--model", run_dir / "checkpoints" / "step-000003", "--steps", 1,
                 "--output-dir", tmp_path / "sft", *SMALL)
    assert sft.exit_code == 0, sft.output
    assert (tmp_path / "sft" / "checkpoints" / "step-000001" / "config.json").is_file()


def test_show_config_lists_keys_and_resolved_values(tmp_path):
    result = invoke("grpo", "--show-config", "grpo.beta=0.2")
    assert result.exit_code == 0, result.output
    assert "grpo.eps_high" in result.output and "beta: 0.2" in result.output


def _error_line(result) -> str:
    """The UnirlError the command raised (the app prints it as one line and exits with 2)."""
    assert isinstance(result.exception, UnirlError), (result.exception, result.output)
    message = str(result.exception)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("args, message", [
    (["group_size=1"], "group_size must be >= 2"),
    (["grpo.betta=0.1"], "did you mean 'grpo.beta'"),
    (["grpo.loss_type=ppo"], "must be one of"),
    (["--model", "janus-pro-9b"], "is not known"),
])
def test_bad_input_is_one_line_before_any_compute(args, message, tmp_path):
    started = time.perf_counter()
    result = invoke("grpo", "--output-dir", tmp_path, *args)
    assert message in _error_line(result)
    assert time.perf_counter() - started < 10


def test_malformed_prompts_file_names_the_line(tiny_janus_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "a photo of a cat"}\n'
                       '{"tag": "single_object", "prompt": \n')
    result = invoke("grpo", "--model", tiny_janus_dir, "--output-dir", tmp_path, f"prompts.file={prompts}")
    assert f"{prompts}:2" in _error_line(result)


def test_model_without_generation_head_and_resume_without_checkpoint(tmp_path):
    folder = tmp_path / "llm"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert "cannot tell which model family" in _error_line(invoke("grpo", "--model", folder, "--output-dir", tmp_path))
    assert "no complete checkpoint" in _error_line(invoke("grpo", "--output-dir", tmp_path / "empty", "--resume"))


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


PAPER_RECIPES = sorted(p for p in (CONFIGS / "train").glob("*.yaml") if not p.stem.startswith("mini"))


@pytest.mark.parametrize("recipe", PAPER_RECIPES, ids=lambda p: p.stem)
def test_recipes_load_with_the_papers_settings(recipe):
    from unirl_cli.config import load_config
    from unirl_cli.train.config import TrainConfig

    config = load_config(TrainConfig, recipe)
    assert config.method == recipe.stem.rsplit("-", 1)[1]
    assert config.optim.lr == 1e-5 and config.prompts_per_step == 8
    assert config.group_size == (3 if recipe.stem.startswith("showo") else 8)
    if config.method == "grpo":
        assert config.grpo.beta == 0.2


@pytest.mark.parametrize("recipe", sorted((CONFIGS / "train").glob("mini-*.yaml")), ids=lambda p: p.stem)
def test_mini_recipes_load_for_the_shapes_world(recipe):
    from unirl_cli.config import load_config
    from unirl_cli.train.config import TrainConfig

    config = load_config(TrainConfig, recipe)
    model = "mini-showo" if recipe.stem.startswith("mini-showo") else "mini"
    assert config.model == model and config.method == recipe.stem.rsplit("-", 1)[1]
    assert config.group_size >= 2


def test_accelerate_configs_name_their_backend():
    import yaml

    backends = {p.stem: yaml.safe_load(p.read_text())["distributed_type"] for p in (CONFIGS / "accelerate").glob("*.yaml")}
    assert backends == {"1gpu": "NO", "8gpu": "MULTI_GPU", "multinode": "MULTI_GPU",
                        "deepspeed_zero2": "DEEPSPEED", "fsdp": "FSDP", "fsdp-cpu": "FSDP", "zero2-cpu": "DEEPSPEED"}


@pytest.mark.slow
def test_resume_after_sigkill_continues_from_the_last_complete_checkpoint(tiny_janus_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    run_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "unirl_cli", "train", "grpo", "--model", str(tiny_janus_dir), "--steps", "40",
               "--output-dir", str(run_dir), *SMALL, "save_every=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run_dir / "checkpoints" / "step-000004").is_dir() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    last_complete = max(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*"))
    assert last_complete >= 4

    resumed = invoke("grpo", "--output-dir", run_dir, "--resume", "--steps", last_complete + 2)
    assert resumed.exit_code == 0, resumed.output
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, last_complete + 3))
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))


def test_prompts_file_with_geneval_test_prompts_is_refused(tiny_janus_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"tag": "single_object", "include": [{"class": "bench", "count": 1}], '
                       '"prompt": "a photo of a bench"}\n')
    message = _error_line(invoke("grpo", "--model", tiny_janus_dir, "--output-dir", tmp_path, f"prompts.file={prompts}"))
    assert "GenEval test prompt" in message and "a photo of a bench" in message


def test_resuming_a_finished_run_asks_for_more_steps(tiny_janus_dir, tmp_path):
    run_dir = tmp_path / "done"
    assert invoke("grpo", "--model", tiny_janus_dir, "--steps", 1, "--output-dir", run_dir, *SMALL).exit_code == 0
    assert "pass a larger --steps" in _error_line(invoke("grpo", "--output-dir", run_dir, "--resume"))


KILLER = '''
import os, signal, sys
from unirl_cli.train import checkpoint as ckpt

save_policy, calls = ckpt._save_policy, []


def dies_while_writing(policy, folder):
    calls.append(folder)
    if len(calls) == 2:  # the second checkpoint: half a weight file, then SIGKILL
        (folder / "model.safetensors").write_bytes(b"half a file")
        os.kill(os.getpid(), signal.SIGKILL)
    save_policy(policy, folder)


ckpt._save_policy = dies_while_writing
from unirl_cli.cli import app

app(args=sys.argv[1:], prog_name="unirl")
'''


def test_a_kill_while_writing_a_checkpoint_loses_nothing(tiny_janus_dir, tmp_path):
    import subprocess
    import sys

    from unirl_cli.train.checkpoint import list_checkpoints

    run_dir = tmp_path / "run"
    args = ["train", "grpo", "--model", str(tiny_janus_dir), "--out", str(run_dir), "--steps", "3", *SMALL,
            "save_every=1", "keep_last=3"]
    killed = subprocess.run([sys.executable, "-c", KILLER, *args], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-000001"]  # the half-written one is not a checkpoint
    assert (run_dir / "checkpoints" / ".tmp-step-000002" / "model.safetensors").read_bytes() == b"half a file"

    again = invoke("grpo", "--model", tiny_janus_dir, "--out", run_dir, "--steps", 3, *SMALL)
    assert "already holds a training run (last checkpoint step-000001)" in _error_line(again)
    resumed = invoke("grpo", "--out", run_dir, "--steps", 3, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-000001", "step-000002", "step-000003"]
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))


def test_overwrite_replaces_a_finished_run(tiny_janus_dir, tmp_path):
    run_dir = tmp_path / "run"
    first = invoke("grpo", "--model", tiny_janus_dir, "--out", run_dir, "--steps", 2, *SMALL)
    assert first.exit_code == 0, first.output
    (run_dir / "notes.txt").write_text("mine")  # not a run file: kept
    second = invoke("grpo", "--model", tiny_janus_dir, "--out", run_dir, "--steps", 1, *SMALL, "--overwrite")
    assert second.exit_code == 0, second.output
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-000001"]
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    assert (run_dir / "notes.txt").read_text() == "mine"
