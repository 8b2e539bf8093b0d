"""`scale_rewards: batch`: a NaN reward leaves the rest of the batch alone, and answer GRPO scales by every process."""

import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.test_train import make_config
from unirl_cli.train.grpo_loss import ADVANTAGE_EPS, group_advantages, nan_std
from unirl_cli.train.loop import train


def test_one_nan_reward_leaves_the_other_advantages_as_without_that_row():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.25, 0.0, 1.0, float("nan"), 0.75])
    advantages = group_advantages(rewards, 4, "batch", nan_std(rewards))
    kept = ~rewards.isnan()
    groups = rewards.view(2, 4)
    # By hand, over the rows that have a reward: group means and one spread of the whole batch.
    means = torch.stack([groups[g][~groups[g].isnan()].mean() for g in range(2)]).repeat_interleave(4)
    expected = (rewards - means) / (rewards[kept].std() + ADVANTAGE_EPS)
    torch.testing.assert_close(advantages[kept], expected[kept])
    assert advantages[6] == 0 and advantages[kept].abs().sum() > 0


class OneUnscorableImage:
    """A reward with spread in every group that cannot score the batch's third image (NaN)."""

    needs_answers = False

    def __call__(self, batch):
        tokens = batch.rollout.image_tokens.float()
        rewards = (tokens < tokens.median()).float().mean(dim=1).cpu()
        rewards[2] = float("nan")
        return rewards


def test_a_grpo_step_with_a_nan_reward_still_learns(tiny_janus_dir, tmp_path):
    config = make_config(tiny_janus_dir, tmp_path / "nan", steps=1, group_size=4, grpo__scale_rewards="batch",
                         grpo__beta=0.0)
    metrics = train(config, reward_fn=OneUnscorableImage()).metrics[0]
    # With a plain std the batch spread was NaN and every advantage (hence the loss) was zero.
    assert metrics["loss"] != 0 and torch.isfinite(torch.tensor(metrics["loss"]))
    assert torch.isfinite(torch.tensor([metrics["reward/mean"], metrics["reward/std"]])).all()


WORKER = textwrap.dedent('''
    import os, sys
    import torch
    from accelerate import Accelerator
    from unirl_cli.config import SamplingConfig
    from unirl_cli.models.janus import JanusModel
    from unirl_cli.train.answer_grpo import sample_answer_groups
    from unirl_cli.train.context import gathered_reward_std
    from unirl_cli.train.rewards import RolloutBatch

    class AnswerLengthReward:
        """Spread without a trained model: the sampled answer's length in characters."""
        def __call__(self, batch):
            return torch.tensor([float(len(answer) % 7) for answer in batch.answers])

    model_dir, out_dir = sys.argv[1], sys.argv[2]
    accelerator = Accelerator(cpu=True)
    policy = JanusModel.load(model_dir)
    records = [{"prompt": p, "question": "How many objects?", "answer": "two", "tag": "counting"}
               for p in ("a red cube", "two blue circles", "a green clock", "three cats")]
    rollout = policy.generate_images([r["prompt"] for r in records], seeds=[0, 1, 2, 3])
    def groups_of(rows, batch_std_of):
        batch = RolloutBatch(records=[records[i] for i in rows], rollout=rollout.select(rows))
        return sample_answer_groups(policy, batch, 3, 1.0, 6, 8, "batch", AnswerLengthReward(), batch_std_of)
    rank, world = accelerator.process_index, accelerator.num_processes
    mine = range(rank * 4 // world, (rank + 1) * 4 // world)
    local = groups_of(mine, lambda rewards: gathered_reward_std(accelerator, rewards))
    torch.save({"advantages": local.advantages, "rewards": local.rewards}, f"{out_dir}/rank{rank}.pt")
    if rank == 0:
        whole = groups_of(range(4), None)
        torch.save({"advantages": whole.advantages, "rewards": whole.rewards}, f"{out_dir}/one_process.pt")
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_answer_scaling_equals_one_process_on_the_same_batch(tiny_janus_dir, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), str(script), str(tiny_janus_dir), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    parts = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    whole = torch.load(tmp_path / "one_process.pt")
    rewards = torch.cat([part["rewards"] for part in parts])
    assert torch.equal(rewards, whole["rewards"]) and rewards.std() > 0
    torch.testing.assert_close(torch.cat([part["advantages"] for part in parts]), whole["advantages"])
    # Each process's own spread would have given other advantages.
    alone = torch.cat([group_advantages(part["rewards"], 3, "batch") for part in parts])
    assert not torch.allclose(alone, whole["advantages"])
