"""What makes UniRL's SFT learn in the shapes world (docs/shapes-world.md, finding 12): the generation term must be
the likelihood of the model's correct images under the distribution they were sampled from (the CFG mix), not
under the conditional branch alone; and the SFT knobs do what their names say."""

import pytest
import torch

from tests.test_train import RECORDS, sft_micro_batch
from unirl_cli.config import SamplingConfig


@pytest.fixture
def policy(tiny_janus_dir):
    from unirl_cli.models.loading import load_model

    model = load_model(str(tiny_janus_dir), device="cpu")
    model.freeze_for_training(train_understanding=True)
    return model


def filtered_micro_batch(policy, rollout, record, gen_guidance):
    from dataclasses import replace

    micro = sft_micro_batch(policy, rollout, record, list(rollout.seeds))
    return replace(micro, settings=replace(micro.settings, gen_guidance=gen_guidance))


def test_cfg_branch_scores_the_images_as_the_sampler_drew_them(policy):
    """gen_branch=cfg: the generation NLL is exactly the sampler's own (CFG) log-likelihood of its images; the
    conditional branch scores them under a distribution they were not drawn from."""
    from unirl_cli.train.sft import filtered_objective

    rollout = policy.generate_images([RECORDS[1]["prompt"]] * 2, [5, 6], SamplingConfig(guidance_scale=3.0))
    own = -rollout.token_logprobs.float().mean(dim=1).mean()
    with torch.no_grad():
        cfg = filtered_objective(policy, filtered_micro_batch(policy, rollout, RECORDS[1], None))["gen_nll"]
        cond = filtered_objective(policy, filtered_micro_batch(policy, rollout, RECORDS[1], 1.0))["gen_nll"]
    torch.testing.assert_close(cfg, own, atol=1e-4, rtol=0)
    assert abs(float(cond - own)) > 1e-2


def test_filtered_cfg_steps_raise_the_correct_images_likelihood_without_collapsing(policy):
    """A few filtered SFT steps (CFG branch) make the sampler's distribution likelier to draw its correct images,
    and its tokens keep entropy (no collapse onto one code)."""
    from unirl_cli.train.sft import filtered_objective

    rollout = policy.generate_images([RECORDS[1]["prompt"]] * 4, [1, 2, 3, 4], SamplingConfig(guidance_scale=3.0))
    micro = filtered_micro_batch(policy, rollout, RECORDS[1], None)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    before = float(policy.image_logprobs(rollout).detach().mean())
    for _ in range(3):
        optimizer.zero_grad()
        filtered_objective(policy, micro)["loss"].backward()
        optimizer.step()
    with torch.no_grad():
        after = float(policy.image_logprobs(rollout).mean())
        logits = policy.image_logits(rollout.prompts, rollout.image_tokens).float()
    assert after > before
    entropy = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1).mean()
    assert float(entropy) > 0.5


def test_generator_grad_scales_what_reaches_the_image_logits():
    from unirl_cli.train.sft import straight_through_tokens

    logits = torch.randn(2, 4, 16, requires_grad=True)
    noise = torch.zeros(2, 4, 16)
    weights = torch.randn(2, 4, 16)
    grads = []
    for scale in (1.0, 0.25, 0.0):
        logits.grad = None
        tokens = straight_through_tokens(logits, noise, tau=1.0, grad_scale=scale)
        torch.testing.assert_close(tokens, torch.nn.functional.one_hot(logits.argmax(-1), 16).float())  # one-hot
        (tokens * weights).sum().backward()
        grads.append(logits.grad.clone())
    torch.testing.assert_close(grads[1], 0.25 * grads[0])
    assert float(grads[2].abs().max()) == 0.0


def test_soft_straight_through_forwards_the_soft_sample():
    from unirl_cli.train.sft import straight_through_tokens

    logits = torch.randn(1, 3, 8)
    soft = straight_through_tokens(logits, torch.zeros_like(logits), tau=0.5, soft_forward=True)
    torch.testing.assert_close(soft, (logits / 0.5).softmax(-1))


def test_kl_anchor_is_zero_at_the_start_and_grows_when_the_policy_moves(policy):
    from dataclasses import replace

    from unirl_cli.train.sft import end_to_end_objective

    rollout = policy.generate_images([RECORDS[1]["prompt"]] * 2, [7, 8])
    with torch.no_grad():
        reference = policy.image_logprobs(rollout, guidance_scale=policy.no_guidance_scale)
    micro = sft_micro_batch(policy, rollout, RECORDS[1], [7, 8])
    micro = replace(micro, settings=replace(micro.settings, kl_beta=1.0, num_images=2), ref_logprobs=reference)
    assert float(end_to_end_objective(policy, micro)["kl"]) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        policy.hf_model.model.generation_head.vision_head.weight.mul_(1.5)
    assert float(end_to_end_objective(policy, micro)["kl"]) > 1e-3


def test_pretraining_branch_is_the_masked_models_own_loss_on_the_kept_images(tiny_showo_dir):
    """gen_branch=pretraining: Show-o's generation term is its masked-token training loss on the images kept
    (weighted by their share of the step's kept images); nothing kept leaves a zero term that still reaches
    the weights' graph."""
    from dataclasses import replace

    from unirl_cli.models.showo import ShowoModel
    from unirl_cli.train.sft import filtered_objective

    model = ShowoModel.load(str(tiny_showo_dir))
    model.freeze_for_training(train_understanding=True)
    rollout = model.generate_images([RECORDS[1]["prompt"]] * 2, [5, 6])
    micro = sft_micro_batch(model, rollout, RECORDS[1], list(rollout.seeds))
    micro = replace(micro, settings=replace(micro.settings, gen_pretraining_loss=True, und_weight=0.0,
                                            generation_total=4.0), generation_weights=torch.tensor([1.0, 0.0]))
    torch.manual_seed(0)
    out = filtered_objective(model, micro)
    torch.manual_seed(0)
    expected = model.image_token_loss(rollout.prompts[:1], rollout.image_tokens[:1], torch.zeros(1, dtype=torch.bool))
    torch.testing.assert_close(out["loss"], expected * 1 / 4)  # one kept image of the step's four
    out["loss"].backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.hf_model.parameters())
    nothing = replace(micro, generation_weights=torch.zeros(2))
    assert float(filtered_objective(model, nothing)["loss"].detach()) == 0.0
