"""Loss terms against hand-computed values, the published-weight conversions, and one step of each family."""
import math

import pytest
import torch

from ganbatch.jobs.train import TrainJob
from ganbatch.models import losses
from ganbatch.families import Batch, get_family
from ganbatch.train import precision
from ganbatch.train.precision import cpu_has_native_bf16, resolve_precision
from ganbatch.train.state import STATE_FILE, build_state, save_state
from ganbatch.train.steps import linear_decay

GANIMATION = get_family("ganimation")


def test_gradient_penalty_of_a_linear_critic_is_norm_minus_one_squared():
    # critic(x) = <w, x> per sample: its gradient is w everywhere, so the penalty is (||w|| - 1)^2 = (3 - 1)^2.
    w = torch.tensor([2.0, 1.0, 2.0, 0.0])  # ||w|| = 3
    points = torch.randn(5, 4).requires_grad_(True)
    penalty = losses.gradient_penalty(lambda x: x @ w, points)
    assert penalty.item() == pytest.approx(4.0)
    # the graph is kept: the penalty can be back-propagated into the critic's weight (d/dw (||w||-1)^2 = 2(1-1/3)w)
    w_param = w.clone().requires_grad_(True)
    losses.gradient_penalty(lambda x: x @ w_param, points).backward()
    assert torch.allclose(w_param.grad, 2 * (1 - 1 / 3) * w)


def test_gradient_penalty_with_a_loss_scale_is_unchanged():
    w = torch.tensor([0.5, 0.5])  # ||w|| = 1/sqrt(2)
    points = torch.randn(3, 2).requires_grad_(True)
    expected = (1 / math.sqrt(2) - 1) ** 2
    assert losses.gradient_penalty(lambda x: x @ w, points, grad_scale=1024.0).item() == pytest.approx(expected)


def test_interpolate_mixes_per_sample():
    real, fake = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    mixed = losses.interpolate(real, fake, torch.tensor([0.25, 1.0]))
    assert mixed.requires_grad
    assert torch.equal(mixed[0], torch.full((1, 2, 2), 0.25)) and torch.equal(mixed[1], torch.ones(1, 2, 2))


def test_adversarial_losses_on_given_scores():
    real = torch.tensor([2.0, 0.5])
    fake = torch.tensor([-2.0, 0.0])
    # wgan: mean(fake) - mean(real) = -1 - 1.25
    assert losses.critic_loss("wgan-gp", real, fake).item() == pytest.approx(-2.25)
    # hinge: mean(relu(1 - real)) + mean(relu(1 + fake)) = mean(0, 0.5) + mean(0, 1) = 0.25 + 0.5
    assert losses.critic_loss("hinge", real, fake).item() == pytest.approx(0.75)
    # lsgan: (mean((real-1)^2) + mean(fake^2)) / 2 = (mean(1, 0.25) + mean(4, 0)) / 2 = (0.625 + 2) / 2
    assert losses.critic_loss("lsgan", real, fake).item() == pytest.approx(1.3125)
    assert losses.generator_adversarial_loss("wgan-gp", fake).item() == pytest.approx(1.0)
    assert losses.generator_adversarial_loss("hinge", fake).item() == pytest.approx(1.0)
    # lsgan generator: mean((fake - 1)^2) / 2 = mean(9, 1) / 2
    assert losses.generator_adversarial_loss("lsgan", fake).item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="unknown adversarial loss 'vanilla'"):
        losses.critic_loss("vanilla", real, fake)


def test_total_variation_of_a_known_mask():
    mask = torch.zeros(2, 1, 2, 3)
    mask[0, 0] = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    # image 0: horizontal |1-0| + |1-1| + |0-0| + |1-0| = 2, vertical |0-0| + |0-1| + |1-1| = 1; image 1: 0
    assert losses.total_variation(mask).item() == pytest.approx(1.5)


def test_weighted_l1_counts_only_weighted_samples_over_the_whole_batch():
    prediction = torch.zeros(2, 3)
    target = torch.tensor([[1.0, 1.0, 1.0], [3.0, 3.0, 3.0]])
    assert losses.weighted_l1(prediction, target, torch.tensor([1.0, 0.0])).item() == pytest.approx(0.5)


def test_changed_pixels_and_region_mean_average_only_over_the_pixels_that_differ():
    reference = torch.zeros(3, 1, 2, 2)
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]], [[[2.0, 2.0], [0.0, 0.0]]]])
    changed = losses.changed_pixels(target, reference, 0.1)
    assert changed.flatten(1).sum(1).tolist() == [1, 0, 2]
    error = (torch.full((3, 1, 2, 2), 0.5) - target).abs()
    # sample 0: one changed pixel, |0.5 - 1| = 0.5; sample 1: nothing changed, 0; sample 2 is not weighted
    assert losses.region_mean(error, changed, torch.tensor([1.0, 1.0, 0.0])).item() == pytest.approx(0.5 / 3)
    assert losses.region_mean(error, changed, torch.ones(3)).item() == pytest.approx((0.5 + 0 + 1.5) / 3)
    assert losses.changed_pixels(target, reference, 5.0).sum() == 0


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    factor = linear_decay(steps=10, decay_start=6)
    assert [factor(s) for s in (0, 5, 6, 8, 10)] == [1.0, 1.0, 1.0, 0.5, 0.0]


def test_family_defaults_are_the_published_values():
    ganimation = TrainJob(family="ganimation", data="d", out="o", name="n", steps=30)
    objective, optimizer = ganimation.resolved_objective(), ganimation.resolved_optimizer()
    assert objective.adversarial == "wgan-gp" and objective.critic_steps == 5
    assert objective.lambda_au == pytest.approx(4000 / 25)  # lambda_D_cond 4000, MSE / batch 25
    assert objective.lambda_tv == pytest.approx(1e-5 * 25)  # lambda_mask_smooth 1e-5 on a sum over 25 images
    assert (objective.lambda_gp, objective.lambda_cycle, objective.lambda_mask) == (10, 10, 0.1)
    assert (optimizer.beta1, optimizer.beta2, optimizer.decay_start) == (0.5, 0.999, 20)  # 20 + 10 epochs
    assert objective.lambda_pixel == 0  # paired supervision is not part of the published objective
    gannotation = TrainJob(family="gannotation", data="d", out="o", name="n")
    objective = gannotation.resolved_objective()
    assert objective.adversarial == "hinge" and objective.critic_steps == 1
    assert (objective.lambda_pixel, objective.lambda_cycle, objective.lambda_triple) == (100, 100, 100)
    wgan = TrainJob(family="gannotation", data="d", out="o", name="n", objective={"adversarial": "wgan-gp"})
    assert wgan.resolved_objective().critic_steps == 4
    assert gannotation.resolved_optimizer().beta2 == 0.9


def _tiny_job(family, adversarial, **objective):
    return TrainJob(family=family, data="d", out="o", name="n", network=dict(size=64, conv_dim=4, res_blocks=1,
                    d_conv_dim=4), objective={"adversarial": adversarial, **objective}, steps=2)


@pytest.mark.parametrize("family, adversarial", [("ganimation", "wgan-gp"), ("gannotation", "hinge"),
                                                 ("gannotation", "wgan-gp"), ("ganimation", "lsgan")])
def test_one_step_of_each_family_moves_both_networks(family, adversarial):
    torch.manual_seed(0)
    state = build_state(_tiny_job(family, adversarial), "cpu")
    batch = Batch(real=torch.rand(2, 3, 64, 64) * 2 - 1, alpha=torch.rand(2))
    if family == "ganimation":
        batch.cond_real, batch.cond_target = torch.rand(2, 17), torch.rand(2, 17)
    else:
        batch.heat_real, batch.heat_target, batch.heat_third = (torch.rand(2, 66, 64, 64) for _ in range(3))
        batch.target, batch.has_pair = torch.rand(2, 3, 64, 64) * 2 - 1, torch.tensor([1.0, 0.0])
    generator_before = [p.clone() for p in state.nets.generator.parameters()]
    critic_before = [p.clone() for p in state.nets.critic.parameters()]
    d_terms = state.trainer.critic_step(batch)
    assert all(p.equal(q) for p, q in zip(state.nets.generator.parameters(), generator_before))
    assert not all(p.equal(q) for p, q in zip(state.nets.critic.parameters(), critic_before))
    critic_after = [p.clone() for p in state.nets.critic.parameters()]
    g_terms = state.trainer.generator_step(batch)
    assert all(p.equal(q) for p, q in zip(state.nets.critic.parameters(), critic_after))
    assert not all(p.equal(q) for p, q in zip(state.nets.generator.parameters(), generator_before))
    assert ("gp" in d_terms) == (adversarial == "wgan-gp")
    expected = {"ganimation": {"adv", "au", "cycle", "mask", "tv"},
                "gannotation": {"adv", "pixel", "cycle", "triple", "mask", "tv"}}[family]
    assert set(g_terms) == expected | {"total"}
    assert all(torch.isfinite(value) for value in (*d_terms.values(), *g_terms.values()))


def _paired_ganimation_batch():
    batch = Batch(real=torch.rand(2, 3, 64, 64) * 2 - 1, alpha=torch.rand(2), cond_real=torch.rand(2, 17),
                  cond_target=torch.rand(2, 17))
    batch.target, batch.has_pair = torch.rand(2, 3, 64, 64) * 2 - 1, torch.tensor([1.0, 0.0])
    return batch


def test_ganimation_pixel_term_is_the_l1_to_the_partner_image_on_paired_samples():
    torch.manual_seed(0)
    nets = build_state(_tiny_job("ganimation", "wgan-gp"), "cpu").nets
    batch = _paired_ganimation_batch()
    objective = _tiny_job("ganimation", "wgan-gp", lambda_pixel=7.0).resolved_objective()
    total, terms = GANIMATION.generator_losses(nets, batch, objective)
    with torch.no_grad():
        fake = nets.generator(nets.as_input(batch.real), batch.cond_target)[0]
    # sample 0 is paired, sample 1 is not: half of sample 0's mean absolute difference (a batch mean)
    assert terms["pixel"].item() == pytest.approx((fake[0] - batch.target[0]).abs().mean().item() / 2, rel=1e-5)
    published = _tiny_job("ganimation", "wgan-gp").resolved_objective()
    published_total, _ = GANIMATION.generator_losses(nets, batch, published)
    assert total.item() == pytest.approx(published_total.item() + 7.0 * terms["pixel"].item(), rel=1e-5)


def test_ganimation_colour_term_is_the_colour_maps_l1_where_the_partner_differs_whatever_the_attention():
    torch.manual_seed(0)
    nets = build_state(_tiny_job("ganimation", "wgan-gp"), "cpu").nets
    batch = _paired_ganimation_batch()
    batch.target[0, :, :8] = batch.real[0, :, :8]  # the partner equals the input in the top rows: not counted there
    objective = _tiny_job("ganimation", "wgan-gp", lambda_pixel=7.0, lambda_colour=3.0).resolved_objective()
    total, terms = GANIMATION.generator_losses(nets, batch, objective)
    with torch.no_grad():
        colour = nets.generator(nets.as_input(batch.real), batch.cond_target)[1]
    changed = (batch.target[0] - batch.real[0]).abs().mean(0) > 6 / 127.5
    assert not changed[:8].any() and changed.float().mean() > 0.5
    expected = (colour[0] - batch.target[0]).abs()[:, changed].mean().item() / 2  # sample 1 is unpaired
    assert terms["colour"].item() == pytest.approx(expected, rel=1e-5)
    without, _ = GANIMATION.generator_losses(nets, batch, objective.model_copy(update={"lambda_colour": 0.0}))
    assert total.item() == pytest.approx(without.item() + 3.0 * terms["colour"].item(), rel=1e-5)
    # the pixel term reaches the colour branch only through (1 - attention); this term does not pass the attention
    colour_weight, attention_weight = nets.generator.color_head[0].weight, nets.generator.attention_head[0].weight
    gradients = torch.autograd.grad(terms["colour"], [colour_weight, attention_weight], allow_unused=True)
    assert gradients[0].abs().sum() > 0 and gradients[1] is None


def test_ganimation_changed_mask_term_is_the_attention_mean_where_the_partner_differs():
    torch.manual_seed(0)
    nets = build_state(_tiny_job("ganimation", "wgan-gp"), "cpu").nets
    batch = _paired_ganimation_batch()
    batch.target[0, :, 8:] = batch.real[0, :, 8:]  # the partner differs from the input in the top 8 rows only
    objective = _tiny_job("ganimation", "wgan-gp", lambda_pixel=1.0, lambda_mask_changed=5.0).resolved_objective()
    total, terms = GANIMATION.generator_losses(nets, batch, objective)
    assert "colour" not in terms  # lambda_colour 0: not computed
    with torch.no_grad():
        attention = nets.generator(nets.as_input(batch.real), batch.cond_target)[2]
    assert terms["mask_changed"].item() == pytest.approx(attention[0, :, :8].mean().item() / 2, rel=1e-4)
    without, _ = GANIMATION.generator_losses(nets, batch, objective.model_copy(update={"lambda_mask_changed": 0.0}))
    assert total.item() == pytest.approx(without.item() + 5.0 * terms["mask_changed"].item(), rel=1e-5)


def test_ganimation_generator_step_with_lambda_pixel_0_is_the_published_step():
    batch = _paired_ganimation_batch()
    unpaired = Batch(real=batch.real, alpha=batch.alpha, cond_real=batch.cond_real, cond_target=batch.cond_target)
    generators = []
    for step_batch in (batch, unpaired):
        torch.manual_seed(0)
        state = build_state(_tiny_job("ganimation", "wgan-gp"), "cpu")
        state.trainer.generator_step(step_batch)
        generators.append(state.nets.generator.state_dict())
    assert all(torch.equal(generators[0][name], generators[1][name]) for name in generators[0])


def test_bf16_autocast_steps_run_and_fp16_needs_cuda():
    job = _tiny_job("ganimation", "wgan-gp").model_dump()
    state = build_state(TrainJob.model_validate({**job, "execution": {"precision": "bf16"}}), "cpu")
    batch = Batch(real=torch.rand(2, 3, 64, 64) * 2 - 1, alpha=torch.rand(2), cond_real=torch.rand(2, 17),
                  cond_target=torch.rand(2, 17))
    terms = {**state.trainer.critic_step(batch), **state.trainer.generator_step(batch)}
    assert all(torch.isfinite(value) for value in terms.values())
    fp16 = TrainJob.model_validate({**job, "execution": {"precision": "fp16"}})
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        build_state(fp16, "cpu")


def test_auto_precision_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch):
    assert cpu_has_native_bf16("AVX512", frozenset({"avx512f", "avx512_bf16"}))
    assert cpu_has_native_bf16("AVX512", frozenset({"avx512f", "amx_bf16", "amx_tile"}))
    assert not cpu_has_native_bf16("AVX2", frozenset({"avx2", "avx512_bf16"}))  # kernels built for AVX2 only
    assert not cpu_has_native_bf16("AVX512", frozenset({"avx512f", "avx2"}))  # AVX-512 without bf16: emulated
    assert not cpu_has_native_bf16("DEFAULT", frozenset())
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda native=native: native)
        assert resolve_precision("auto", "cpu") == expected
        assert [resolve_precision(p, "cpu") for p in ("fp32", "bf16")] == ["fp32", "bf16"]  # as asked
    job = TrainJob(family="ganimation", data="d", out="o", name="n")
    assert job.execution.precision == "auto"
    assert build_state(_tiny_job("ganimation", "wgan-gp"), "cpu").trainer.precision == "fp32"  # patched: no bf16


def test_bf16_gradient_penalty_double_backward_matches_fp32():
    """The critic step's penalty differentiates the critic's gradient (double backward) under bf16 autocast too; it
    stays close to the fp32 value and its gradients reach the critic's weights."""
    torch.manual_seed(0)
    job = _tiny_job("ganimation", "wgan-gp")
    critic = build_state(job, "cpu").nets.critic
    points = losses.interpolate(torch.rand(4, 3, 64, 64), torch.rand(4, 3, 64, 64), torch.rand(4))
    penalties = []
    for dtype in (None, torch.bfloat16):
        critic.zero_grad()
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            penalty = losses.gradient_penalty(lambda x: critic(x)[0], points)
        penalty.backward()
        assert penalty.dtype == torch.float32 and torch.isfinite(penalty)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.features.parameters())
        penalties.append(float(penalty.detach()))
    assert penalties[1] == pytest.approx(penalties[0], rel=0.05)


def test_small_models_have_small_training_checkpoints(tmp_path):
    """A conv_dim 8 model at 64 px: the critic follows it (8..128 channels), so state.pt (both networks and both
    Adam states) is small; the full-size 44.8 M-parameter critic it used to get made it 513 MB."""
    job = TrainJob(family="ganimation", data="d", out="o", name="n",
                   network={"size": 64, "conv_dim": 8, "res_blocks": 2})
    state = build_state(job, "cpu")
    save_state(state, tmp_path, job)
    critic_parameters = sum(p.numel() for p in state.nets.critic.parameters())
    assert critic_parameters < 200_000
    assert (tmp_path / STATE_FILE).stat().st_size < 4_000_000


def test_gannotation_terms_with_weight_zero_are_not_computed():
    job = _tiny_job("gannotation", "hinge", lambda_triple=0, lambda_cycle=0)
    state = build_state(job, "cpu")
    calls = []
    state.nets.generator.register_forward_hook(lambda *args: calls.append(1))
    heat = torch.rand(2, 66, 64, 64)
    batch = Batch(real=torch.rand(2, 3, 64, 64) * 2 - 1, alpha=torch.rand(2), heat_real=heat, heat_target=heat,
                  heat_third=heat, target=torch.rand(2, 3, 64, 64) * 2 - 1, has_pair=torch.ones(2))
    terms = state.trainer.generator_step(batch)
    assert len(calls) == 1 and "triple" not in terms and "cycle" not in terms
    calls.clear()
    full = build_state(_tiny_job("gannotation", "hinge"), "cpu")
    full.nets.generator.register_forward_hook(lambda *args: calls.append(1))
    assert {"cycle", "triple"} <= set(full.trainer.generator_step(batch)) and len(calls) == 4
