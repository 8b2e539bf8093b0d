"""GRPO maths against values worked out by hand (see the comments for each number)."""

import math

import pytest
import torch

from unirl_cli.train.grpo_loss import (ClipSettings, LossNormalizer, aggregate_loss, clipped_surrogate,
                                       group_advantages, grpo_loss, k3_kl)


def test_group_advantages_scaled_by_bessel_std_of_each_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    advantages = group_advantages(rewards, group_size=4, scale_rewards="group")
    # group 1: mean 0.5, deviations +-0.5, Bessel std sqrt(1/3) = 0.57735
    first = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    # group 2: mean 0.75, deviations (0.25, 0.25, 0.25, -0.75), Bessel std sqrt(0.75/3) = 0.5
    second = [0.25 / 0.5001] * 3 + [-0.75 / 0.5001]
    expected = torch.tensor([first, -first, -first, first] + second)
    torch.testing.assert_close(advantages, expected)


def test_group_advantages_without_scaling_and_with_batch_std():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    unscaled = group_advantages(rewards, group_size=4, scale_rewards="none")
    torch.testing.assert_close(unscaled, torch.tensor([0.5, -0.5, -0.5, 0.5, 0.25, 0.25, 0.25, -0.75]))
    # batch: mean 0.625, squares 5 * 0.375^2 + 3 * 0.625^2 = 1.875, / 7 -> std 0.517549
    batch_std = math.sqrt(1.875 / 7)
    batch = group_advantages(rewards, group_size=4, scale_rewards="batch")
    torch.testing.assert_close(batch, unscaled / (batch_std + 1e-4))


def test_equal_rewards_give_zero_advantage_and_nan_rewards_are_ignored():
    flat = group_advantages(torch.tensor([1.0, 1.0, 1.0]), group_size=3)
    assert torch.equal(flat, torch.zeros(3))
    with_nan = group_advantages(torch.tensor([1.0, float("nan"), 0.0]), group_size=3, scale_rewards="none")
    torch.testing.assert_close(with_nan, torch.tensor([0.5, 0.0, -0.5]))


def test_group_advantages_rejects_ragged_groups():
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(5), group_size=2)


def test_k3_kl_hand_value():
    # ref - pi = log(0.25) - log(0.5) = -log 2 -> exp(-log 2) + log 2 - 1 = 0.5 + 0.693147 - 1
    kl = k3_kl(torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)]))
    torch.testing.assert_close(kl, torch.tensor([0.5 + math.log(2) - 1]))
    assert float(k3_kl(torch.tensor([-3.0]), torch.tensor([-3.0]))) == 0.0


def test_clipped_surrogate_with_separate_low_and_high_epsilon():
    settings = ClipSettings(eps_low=0.2, eps_high=0.28)
    ratios = torch.tensor([[1.5], [0.5], [0.5], [1.5]])
    old = torch.zeros(4, 1)
    advantages = torch.tensor([1.0, -1.0, 2.0, -1.0])
    terms = clipped_surrogate(ratios.log(), old, advantages, settings)
    # A>0, rho 1.5: clipped to 1.28 -> -1.28 ; A<0, rho 0.5: min(-0.5, -0.8) = -0.8 -> 0.8
    # A>0, rho 0.5: min(1.0, 1.6) = 1.0 -> -1.0 ; A<0, rho 1.5: min(-1.5, -1.28) = -1.5 -> 1.5
    torch.testing.assert_close(terms.loss, torch.tensor([[-1.28], [0.8], [-1.0], [1.5]]))
    assert terms.high_clipped.squeeze(1).tolist() == [True, False, False, False]
    assert terms.low_clipped.squeeze(1).tolist() == [False, True, False, False]


def test_kl_term_weighted_by_beta_and_optionally_by_ratio():
    logprobs = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])
    old = torch.tensor([[math.log(0.4)]])  # ratio 1.25, inside the clip range
    advantages = torch.tensor([0.0])
    kl = 0.5 + math.log(2) - 1
    plain = clipped_surrogate(logprobs, old, advantages, ClipSettings(beta=0.2), ref)
    torch.testing.assert_close(plain.loss, torch.tensor([[0.2 * kl]]))
    corrected = clipped_surrogate(logprobs, old, advantages, ClipSettings(beta=0.2, kl_ratio_correction=True), ref)
    torch.testing.assert_close(corrected.loss, torch.tensor([[0.2 * kl * 1.25]]))
    with pytest.raises(ValueError):
        clipped_surrogate(logprobs, old, advantages, ClipSettings(beta=0.2))


LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])


@pytest.mark.parametrize("loss_type, expected", [
    ("grpo", (1.5 + 5.0) / 2),  # per-sample token means (3/2, 15/3), then their mean
    ("bnpo", 18 / 5),  # all active tokens of the batch
    ("dr_grpo", 18 / (2 * 4)),  # samples * max_length 4
    ("dapo", 18 / 9),  # global active tokens 18 over 2 processes = 9 per process
])
def test_aggregation_variants(loss_type, expected):
    sizes = LossNormalizer(num_sequences=2, num_tokens=5, max_length=4, tokens_per_process=9)
    assert float(aggregate_loss(LOSS, MASK, loss_type, sizes)) == pytest.approx(expected)


def test_aggregation_defaults_to_the_batch_itself_and_rejects_unknown_types():
    assert float(aggregate_loss(LOSS, MASK, "dapo")) == pytest.approx(18 / 5)
    assert float(aggregate_loss(LOSS, MASK, "dr_grpo")) == pytest.approx(18 / 6)
    with pytest.raises(ValueError):
        aggregate_loss(LOSS, MASK, "ppo")


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_micro_batch_losses_add_up_to_the_whole_batch(loss_type):
    torch.manual_seed(0)
    loss = torch.randn(6, 5)
    mask = (torch.rand(6, 5) > 0.3).float()
    sizes = LossNormalizer.for_batch(mask)
    whole = aggregate_loss(loss, mask, loss_type, sizes)
    parts = sum(aggregate_loss(loss[i:i + 2], mask[i:i + 2], loss_type, sizes) for i in range(0, 6, 2))
    torch.testing.assert_close(parts, whole)


def test_on_policy_gradient_is_minus_advantage_over_tokens():
    logprobs = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], requires_grad=True)
    out = grpo_loss(logprobs, logprobs.detach(), torch.tensor([1.0, -1.0]), ClipSettings(), "grpo")
    out.loss.backward()
    # rho == 1 everywhere; d(-rho*A)/d logpi = -A, averaged over 2 tokens and 2 samples
    torch.testing.assert_close(logprobs.grad, torch.tensor([[-0.25, -0.25], [0.25, 0.25]]))
    assert float(out.loss.detach()) == 0.0 and float(out.clip_fraction) == 0.0 and out.mean_kl is None


def test_clipped_tokens_get_no_gradient():
    logprobs = torch.tensor([[math.log(2.0)]], requires_grad=True)
    out = grpo_loss(logprobs, torch.zeros(1, 1), torch.tensor([1.0]), ClipSettings(0.2, 0.2), "bnpo")
    out.loss.backward()
    assert float(logprobs.grad) == 0.0
    assert float(out.loss.detach()) == pytest.approx(-1.2) and float(out.high_clip_fraction) == 1.0
