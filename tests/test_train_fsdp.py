"""FSDP and DeepSpeed ZeRO-2 on two CPU processes with the shipped `fsdp-cpu` and `zero2-cpu` accelerate configs:
each trains, writes ordinary model folders that `generate` loads, resumes exactly, and follows the one-process run
of the same global batch."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from unirl_cli.resources import resolve_config

WORKER = textwrap.dedent('''
    import sys
    from unirl_cli.config import build_config
    from unirl_cli.train.config import TrainConfig
    from unirl_cli.train.loop import train

    class LowTokenReward:  # per image, so it does not depend on how the batch is split over processes
        needs_answers = False
        def __call__(self, batch):
            return (batch.rollout.image_tokens < 8192).float().mean(dim=1).cpu()

    model_dir, out_dir, steps, resume = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "resume"
    config = build_config(TrainConfig, CONFIG | {"model": model_dir, "output_dir": out_dir, "steps": steps})
    train(config, reward_fn=LowTokenReward(), resume="" if resume else None)
''')
CONFIG = {"method": "grpo", "prompts_per_step": 2, "group_size": 4, "micro_batch_size": 4, "save_every": 1,
          "keep_last": 3, "prompts": {"num_generated": 8}, "optim": {"lr": 1e-3},
          "grpo": {"beta": 0.05, "loss_type": "grpo"}, "log": {"live": False, "plots": False}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(config: str, script, model_dir, out_dir, steps: int, resume: bool = False) -> None:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(resolve_config(config,
               "accelerate")), "--main_process_port", str(free_port()), str(script), str(model_dir), str(out_dir),
               str(steps), "resume" if resume else "new"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def weights(checkpoint) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "model.safetensors"))


def losses(run_dir) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("config", ["fsdp-cpu", "zero2-cpu"])
def test_sharded_run_trains_saves_resumes_and_follows_one_process(config, tiny_janus_dir, tmp_path):
    from unirl_cli.config import build_config
    from unirl_cli.train.config import TrainConfig
    from unirl_cli.train.loop import train

    if config == "zero2-cpu":
        pytest.importorskip("deepspeed")
    script = tmp_path / "worker.py"
    script.write_text(f"CONFIG = {CONFIG!r}\n" + WORKER)
    whole, split = tmp_path / "whole", tmp_path / "split"
    launch(config, script, tiny_janus_dir, whole, steps=2)
    launch(config, script, tiny_janus_dir, split, steps=1)  # stops after step 1, as a kill after its checkpoint would
    launch(config, script, tiny_janus_dir, split, steps=2, resume=True)

    final = whole / "checkpoints" / "step-000002"
    start = load_file(str(tiny_janus_dir / "model.safetensors"))
    full = weights(final)
    assert set(full) == set(start)  # the gathered full state dict, in the model's own layout
    assert any(not torch.equal(full[name], start[name]) for name in full if "generation_head" in name)
    resumed = weights(split / "checkpoints" / "step-000002")
    assert all(torch.equal(full[name], resumed[name]) for name in full)  # resume is exact when sharded too

    from tests.test_train import LowTokenReward

    one = tmp_path / "one"
    train(build_config(TrainConfig, CONFIG | {"model": str(tiny_janus_dir), "output_dir": str(one), "steps": 2}),
          reward_fn=LowTokenReward())
    # Same global batch: the loss of each step and the weights agree within float32 reduction-order noise.
    assert losses(whole) == pytest.approx(losses(one), abs=1e-5)
    alone = weights(one / "checkpoints" / "step-000002")
    assert max(float((full[name] - alone[name]).abs().max()) for name in full) < 1e-4

    from typer.testing import CliRunner

    from unirl_cli.cli import app

    generated = CliRunner().invoke(app, ["generate", "a red circle", "--model", str(final), "-n", "1",
                                         "--out", str(tmp_path / "images")])
    assert generated.exit_code == 0, generated.output
    assert (tmp_path / "images" / "00000.png").is_file()
