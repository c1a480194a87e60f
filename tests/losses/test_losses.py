"""Reconstruction, geometry and supervised segmentation losses by hand, and the weighted total."""

import math

import pytest
import torch
import torch.nn.functional as F

from clusteringsdf.losses.geometry import collision
from clusteringsdf.losses.reconstruction import depth_l1, depth_scale_shift_invariant, normal_losses, rgb_l1
from clusteringsdf.losses.segmentation import opacity_bce, opacity_nll, semantic_cross_entropy
from clusteringsdf.methods import Term, weighted_total


def test_rgb_and_depth_l1():
    assert rgb_l1(torch.full((4, 3), 0.5), torch.full((4, 3), 0.25)).item() == pytest.approx(0.25)
    rendered = torch.tensor([1.0, 2.0, 3.0, 4.0])
    target = torch.tensor([1.5, 0.0, 2.0, 4.0])  # the 0 is a missing measurement
    assert depth_l1(rendered, target).item() == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    empty = depth_l1(rendered.requires_grad_(True), torch.zeros(4))
    assert empty.item() == 0.0 and empty.requires_grad  # no target: zero, still differentiable


def test_scale_shift_invariant_depth_ignores_a_per_frame_affine_map():
    target = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 4.0])
    frame = torch.tensor([0, 0, 0, 1, 1, 1])
    rendered = torch.where(frame == 0, 2.0 * target + 1.0, 0.5 * target - 3.0)
    assert depth_scale_shift_invariant(rendered, target, frame).item() == pytest.approx(0.0, abs=1e-10)
    noisy = rendered + torch.tensor([0.0, 0.3, 0.0, 0.0, 0.0, 0.0])
    assert depth_scale_shift_invariant(noisy, target, frame).item() > 1e-4


def test_normal_losses_skip_missing_targets_and_masked_rays():
    rendered = torch.tensor([[0.0, 0.0, 2.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # not unit: normalised inside
    target = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # the last is missing
    l1, cos = normal_losses(rendered, target)
    assert l1.item() == pytest.approx((0.0 + 2.0) / 2, abs=1e-5)  # |(1,0,0) - (0,1,0)|_1 = 2
    assert cos.item() == pytest.approx((0.0 + 1.0) / 2, abs=1e-5)
    l1, cos = normal_losses(rendered, target, mask=torch.tensor([True, False, True]))
    assert l1.item() == pytest.approx(0.0, abs=1e-5) and cos.item() == pytest.approx(0.0, abs=1e-5)


def test_collision_by_hand():
    """Inside the arg-min channel k* at depth d = -s_k*, every other channel must be at least d
    outside: penalty relu(-s_k - s_k*) (s_k* detached), summed over channels, mean over points."""
    sdf = torch.tensor([
        [-0.3, -0.1, 0.5],  # inside channel 0 at depth 0.3: channel 1 (-0.1) violates by 0.4, channel 2 (0.5) is fine
        [0.1, 0.3, -0.05],  # inside channel 2 at depth 0.05: the others are at least 0.05 outside
        [0.2, 0.5, 0.3],  # outside every channel
    ], requires_grad=True)
    value = collision(sdf)
    assert value.item() == pytest.approx(0.4 / 3)
    value.backward()
    expected = torch.zeros(3, 3)
    expected[0, 1] = -1.0 / 3  # only the violating channel is pushed out; the minimum is detached
    assert torch.allclose(sdf.grad, expected)


def test_opacity_bce_and_nll_by_hand():
    opacity = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.2, 0.6], [0.5, 0.5, 0.0]])
    channel = torch.tensor([0, 2, -1])  # the last ray is ignored
    expected = F.binary_cross_entropy(opacity[:2].clamp(1e-4, 1 - 1e-4), F.one_hot(channel[:2], 3).float())
    assert opacity_bce(opacity, channel).item() == pytest.approx(expected.item())
    nll = -(math.log(0.9 / 1.0) + math.log(0.6 / 1.0)) / 2
    assert opacity_nll(opacity, channel).item() == pytest.approx(nll, rel=1e-5)
    assert opacity_bce(opacity, torch.full((3,), -1)).item() == 0.0


def test_semantic_cross_entropy_ignores_void_and_out_of_range_labels_and_weights_by_confidence():
    probabilities = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6]])
    labels = torch.tensor([1, 2, 0, 5])  # void and an unknown class are ignored
    confidence = torch.tensor([1.0, 0.5, 1.0, 1.0])
    expected = (-math.log(0.7) * 1.0 - math.log(0.25) * 0.5) / 2
    assert semantic_cross_entropy(probabilities, labels, confidence).item() == pytest.approx(expected, rel=1e-5)
    assert semantic_cross_entropy(probabilities, torch.zeros(4, dtype=torch.int64)).item() == 0.0


def test_weighted_total_sums_weighted_terms_and_skips_zero_weights():
    a = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(float("nan"))  # weight 0: not even a NaN may leak in
    terms = {"a": Term(a, 3.0), "b": Term(b, 0.0), "c": Term(torch.tensor(1.5), 1.0)}
    total = weighted_total(terms)
    assert total.item() == pytest.approx(7.5)
    total.backward()
    assert a.grad.item() == pytest.approx(3.0)
    with pytest.raises(ValueError):
        weighted_total({"b": Term(b, 0.0)})
