"""Two CPU processes under `accelerate launch` (DDP over gloo) end with identical weights and one checkpoint."""

import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

WORKER = textwrap.dedent('''
    import sys
    import torch
    from safetensors.torch import save_file
    from unirl_cli.config import build_config
    from unirl_cli.train.config import TrainConfig
    from unirl_cli.train.loop import train

    class LowTokenReward:
        needs_answers = False
        def __call__(self, batch):
            return (batch.rollout.image_tokens < 8192).float().mean(dim=1).cpu()

    model_dir, out_dir, method = sys.argv[1], sys.argv[2], sys.argv[3]
    config = build_config(TrainConfig, {
        "method": method, "model": model_dir, "steps": 2, "prompts_per_step": 2, "group_size": 4, "micro_batch_size": 2,
        "output_dir": out_dir, "prompts": {"num_generated": 8}, "optim": {"lr": 1e-3},
        "grpo": {"beta": 0.05, "loss_type": "dapo", "scale_rewards": "batch"}, "log": {"live": False}})
    result = train(config, reward_fn=LowTokenReward())
    import os
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    weights = {name: p.detach().contiguous() for name, p in result.policy.named_parameters()}
    save_file(weights, f"{out_dir}/rank{rank}_of_{world}.safetensors")
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["grpo", "sft"])
def test_two_process_run_keeps_ranks_identical(tiny_janus_dir, tmp_path, method):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out_dir = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), str(script), str(tiny_janus_dir), str(out_dir), method]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0 = load_file(str(out_dir / "rank0_of_2.safetensors"))
    rank1 = load_file(str(out_dir / "rank1_of_2.safetensors"))
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)
    start = load_file(str(tiny_janus_dir / "model.safetensors"))
    head = [name for name in rank0 if "generation_head" in name]
    assert head and all(name.removeprefix("hf_model.") in start for name in head)
    assert any(not torch.equal(rank0[name], start[name.removeprefix("hf_model.")]) for name in head)
    assert [p.name for p in (out_dir / "checkpoints").iterdir()] == ["step-000002"]
