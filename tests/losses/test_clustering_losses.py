"""ClusteringSDF losses: hand-computed values, gradient directions, degenerate batches."""

from __future__ import annotations

import math

import torch

from clusteringsdf.losses import clustering
from clusteringsdf.losses.contrastive import slow_fast_loss, split_halves


def groups_of(labels, frames=None):
    labels = torch.tensor(labels)
    frames = torch.zeros_like(labels) if frames is None else torch.tensor(frames)
    return labels, frames, clustering.make_groups(labels, frames)


def test_groups_are_per_frame_and_skip_ignored_rays():
    labels, frames, g = groups_of([3, 3, 0, -1, 3, 7], [0, 0, 0, 0, 1, 1])
    assert g.size == 4  # (0,0) (0,3) (1,3) (1,7): label 3 of frame 0 and of frame 1 are different groups
    assert g.keep.tolist() == [True, True, True, False, True, True]
    assert sorted(zip(g.frame.tolist(), g.label.tolist())) == [(0, 0), (0, 3), (1, 3), (1, 7)]
    assert g.count.sum() == 5


def test_differentiation_value_by_hand():
    # Two labels with centres (1, 0) and (0, 1): distance sqrt(2), N = 2 -> -sqrt(2) / (2 * 1).
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels, frames, g = groups_of([1, 1, 2])
    value = clustering.differentiation_loss(clustering.cluster_centres(p, g), g)
    assert math.isclose(float(value), -math.sqrt(2) / 2, rel_tol=1e-5)
    # three labels at the simplex vertices: 3 pairs of sqrt(2), / (3 * 2)
    p = torch.eye(3)
    labels, frames, g = groups_of([1, 2, 3])
    value = clustering.differentiation_loss(clustering.cluster_centres(p, g), g)
    assert math.isclose(float(value), -3 * math.sqrt(2) / 6, rel_tol=1e-5)


def test_differentiation_averages_frames_and_ignores_cross_frame_pairs():
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    # frame 0: two labels far apart (-sqrt(2)/2); frame 1: one label only (no pair) -> mean over frame 0 only
    labels, frames, g = groups_of([1, 2, 5, 5], [0, 0, 1, 1])
    value = clustering.differentiation_loss(clustering.cluster_centres(p, g), g)
    assert math.isclose(float(value), -math.sqrt(2) / 2, rel_tol=1e-5)


def test_differentiation_pushes_two_centres_apart():
    logits = torch.tensor([[0.5, 0.4, 0.3], [0.45, 0.42, 0.31]], requires_grad=True)
    labels, frames, g = groups_of([1, 2])
    p = torch.softmax(logits, -1)
    loss = clustering.differentiation_loss(clustering.cluster_centres(p, g), g)
    loss.backward()
    with torch.no_grad():
        stepped = torch.softmax(logits - 0.5 * logits.grad, -1)
    before = (p[0] - p[1]).norm()
    after = (stepped[0] - stepped[1]).norm()
    assert after > before


def test_regularization_value_and_direction():
    # Var over channels (unbiased) of [0.7, 0.2, 0.1]: mean 1/3 -> ((0.3667^2 + 0.1333^2 + 0.2333^2) / 2)
    p = torch.tensor([[0.7, 0.2, 0.1]])
    labels, frames, g = groups_of([4])
    expected = ((0.7 - 1 / 3) ** 2 + (0.2 - 1 / 3) ** 2 + (0.1 - 1 / 3) ** 2) / 2
    assert math.isclose(float(clustering.regularization_loss(p, g)), expected, rel_tol=1e-5)
    # the gradient step moves the ray's distribution toward uniform
    logits = torch.tensor([[2.0, 0.0, -1.0]], requires_grad=True)
    clustering.regularization_loss(torch.softmax(logits, -1), g).backward()
    with torch.no_grad():
        before = torch.softmax(logits, -1)
        after = torch.softmax(logits - 1.0 * logits.grad, -1)
    uniform = torch.full((3,), 1 / 3)
    assert (after - uniform).norm() < (before - uniform).norm()
    # background-only batches have nothing to regularise
    labels, frames, g = groups_of([0, 0])
    assert float(clustering.regularization_loss(torch.rand(2, 3), g)) == 0.0


def test_regularization_across_rays_variant():
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels, frames, g = groups_of([1, 1])
    # centre (0.5, 0.5): each ray is 0.5 squared away
    assert math.isclose(float(clustering.regularization_loss(p, g, axis="rays")), 0.5, rel_tol=1e-6)


def test_onehot_value_and_foreground_only():
    o = torch.tensor([[0.8, 0.1, 0.0], [0.9, 0.0, 0.3]])
    labels = torch.tensor([1, 0])
    # only the first ray: target (1, 0, 0): (0.04 + 0.01 + 0) / 3
    assert math.isclose(float(clustering.onehot_loss(o, labels)), 0.05 / 3, rel_tol=1e-5)
    assert float(clustering.onehot_loss(o, torch.tensor([0, 0]))) == 0.0


def test_foreground_background_value():
    o = torch.tensor([[0.6, 0.4], [0.2, 0.8], [0.1, 0.9]])
    labels = torch.tensor([0, 3, 3])
    # bg: |0.6 - 1| = 0.4; fg: mean(0.2, 0.1) = 0.15
    value = clustering.foreground_background_loss(o, labels, bg_weight=0.2, fg_weight=0.1)
    assert math.isclose(float(value), 0.2 * 0.4 + 0.1 * 0.15, rel_tol=1e-5)
    only_fg = clustering.foreground_background_loss(o[1:], labels[1:], 0.2, 0.1)
    assert math.isclose(float(only_fg), 0.1 * 0.15, rel_tol=1e-5)


def test_semantic_matching_value():
    o = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.6, 0.4], [0.5, 0.0, 0.0]])
    labels, frames, g = groups_of([1, 1, 2])
    confidence = torch.tensor([1.0, 0.5, 0.8])
    # class 1: centre (0, 0.8, 0.2), |(0, -0.2, 0.2)| = 0.2828 * conf 0.75; class 2: centre (0.5, 0, 0), |(0.5, 0, -1)| * 0.8
    expected = (0.75 * math.sqrt(0.08) + 0.8 * math.sqrt(1.25)) / 2
    value = clustering.semantic_matching_loss(o, g, confidence)
    assert math.isclose(float(value), expected, rel_tol=1e-5)


def test_semantic_ray_value_and_direction():
    o = torch.tensor([[0.1, 0.6, 0.3], [0.0, 0.2, 0.2], [0.5, 0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([2, 2, 0])  # the last ray has no class: left out
    confidence = torch.tensor([1.0, 0.5, 1.0])
    expected = -(1.0 * math.log(0.3) + 0.5 * math.log(0.5)) / 2
    value = clustering.semantic_ray_loss(o, labels, confidence)
    assert math.isclose(float(value.detach()), expected, rel_tol=1e-5)
    value.backward()
    assert o.grad[0, 2] < 0 and o.grad[0, 1] > 0  # the ray in channel 1 is pulled to channel 2
    assert o.grad[2].abs().sum() == 0


def test_cross_view_pulls_different_classes_of_different_frames_apart():
    logits = torch.tensor([[0.5, 0.5, 0.2], [0.52, 0.49, 0.2]], requires_grad=True)
    semantic = torch.tensor([5, 6])  # different classes
    frames = torch.tensor([0, 1])  # never in the same frame
    p = torch.softmax(logits, -1)
    loss = clustering.cross_view_loss(p, semantic, frames)
    assert 0 < float(loss.detach()) <= 1
    loss.backward()
    with torch.no_grad():
        after = torch.softmax(logits - 5.0 * logits.grad, -1)
    assert (after[0] - after[1]).norm() > (p[0] - p[1]).norm()
    # same class in both frames: nothing to separate
    same = clustering.cross_view_loss(p.detach(), torch.tensor([5, 5]), frames)
    assert float(same) == 0.0


def test_degenerate_batches_are_finite():
    for labels in ([0, 0, 0], [4, 4, 4], [-1, -1, -1], [0, 3, 3]):
        logits = torch.rand(3, 5, requires_grad=True)
        p = torch.softmax(logits, -1)
        lab, frames, g = groups_of(labels)
        kept = p[g.keep]
        terms = [
            clustering.differentiation_loss(clustering.cluster_centres(kept, g), g),
            clustering.regularization_loss(kept, g),
            clustering.onehot_loss(logits, lab),
            clustering.foreground_background_loss(logits, lab, 0.2, 0.1),
            clustering.semantic_matching_loss(logits[g.keep], g, torch.ones(int(g.keep.sum()))),
            clustering.semantic_ray_loss(p, lab, torch.ones(3)),
            clustering.cross_view_loss(p, lab, frames),
        ]
        total = sum(terms)
        assert torch.isfinite(total)
        total.backward()
        assert torch.isfinite(logits.grad).all()
    empty = torch.zeros(0, 5, requires_grad=True)
    lab, frames, g = groups_of([])
    assert torch.isfinite(clustering.differentiation_loss(clustering.cluster_centres(empty, g), g))


def test_identical_centres_give_finite_gradients():
    """All object channels start identical: the centres coincide and the distance is 0."""
    logits = torch.full((4, 3), 0.3, requires_grad=True)
    labels, frames, g = groups_of([1, 1, 2, 2])
    p = torch.softmax(logits, -1)
    clustering.differentiation_loss(clustering.cluster_centres(p, g), g).backward()
    assert torch.isfinite(logits.grad).all()


def test_slow_fast_halves_and_values():
    frames = torch.tensor([0, 0, 0, 0, 1, 1])
    assert split_halves(frames).tolist() == [True, True, False, False, True, False]
    fast = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]], requires_grad=True)
    slow = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([1, 2, 1, 2])
    conc, con = slow_fast_loss(fast, slow, labels, torch.zeros(4, dtype=torch.long), confidence=torch.ones(4))
    # each anchor sits on its slow centroid: exp(0) = 1 -> -1
    assert math.isclose(float(conc.detach()), -1.0, rel_tol=1e-6)
    # p_i = e^{K_pos} / (e^{K_pos} + e^{K_neg}) with K = exp(-d): d_pos = 0, d_neg = 1
    expected = -math.log(math.e / (math.e + math.exp(math.exp(-1.0))))
    assert math.isclose(float(con.detach()), expected, rel_tol=1e-5)
    (conc + con).backward()
    assert torch.isfinite(fast.grad).all()
    zero_c, zero_k = slow_fast_loss(fast[:1], slow[:1], labels[:1], torch.zeros(1, dtype=torch.long), confidence=torch.ones(1))
    assert float(zero_c.detach()) == 0.0 and float(zero_k.detach()) == 0.0


def test_class_coherence_counts_a_rays_share_of_channels_voted_for_another_class():
    logits = torch.tensor([[0.0, 1.0, 1.7], [0.0, 2.0, 0.0], [3.0, 0.0, 0.0]], requires_grad=True)
    p = torch.softmax(logits, -1)
    labels = torch.tensor([5, 5, -1])  # the third ray has no thing class: not counted
    confidence = torch.tensor([0.5, 1.0, 1.0])
    channel_classes = torch.tensor([1, 5, 14])  # channel 0 is the background: never counted
    loss = clustering.class_coherence_loss(p, labels, confidence, channel_classes)
    expected = (0.5 * p[0, 2] + 1.0 * p[1, 2]) / 2
    assert math.isclose(float(loss.detach()), float(expected.detach()), rel_tol=1e-6)
    loss.backward()
    assert logits.grad[0, 2] > 0 and logits.grad[0, 1] < 0  # ray 0 leaves the refrigerator channel for the chair one
    assert logits.grad[2].abs().sum() == 0
    no_votes = clustering.class_coherence_loss(p.detach(), labels, confidence, torch.tensor([-1, -1, -1]))
    assert float(no_votes) == 0.0


def test_separation_counts_different_places_of_one_class_sharing_a_channel():
    """Places 1 and 2 are two chairs (class 5), place 2's rays also in place 1's channel; place 3
    a table (class 7) in place 1's channel; place 4 a chair with too few rays to judge."""
    place = torch.tensor([1] * 6 + [2] * 6 + [3] * 6 + [4] * 2 + [-1] * 2)  # two rays of stuff
    semantic = torch.tensor([5] * 6 + [5] * 6 + [7] * 6 + [5] * 2 + [-1] * 2)
    channel = torch.tensor([1] * 6 + [1] * 3 + [2] * 3 + [1] * 6 + [1] * 2 + [0] * 2)
    opacity = torch.nn.functional.one_hot(channel, 4).float()
    loss = clustering.separation_loss(opacity, place, semantic)
    # pairs (1, 2) and (2, 1): mu_1 = (1, 0, 0), mu_2 = (0.5, 0.5, 0) over channels 1..3
    assert math.isclose(float(loss.detach()), 0.5, abs_tol=1e-6)
    soft = (0.1 + 0.5 * opacity).requires_grad_(True)  # the same choices, unsaturated: gradients everywhere
    value = clustering.separation_loss(soft, place, semantic)
    value.backward()
    assert soft.grad[place == 2, 1].min() > 0  # the second chair leaves the first chair's channel
    for untouched in (3, 4, -1):
        assert soft.grad[place == untouched].abs().sum() == 0
    one_place = clustering.separation_loss(soft.detach(), torch.where(place == 2, 1, place), semantic)
    assert float(one_place) == 0.0  # one chair seen in many rays is never pushed apart from itself


def test_the_place_seed_pulls_each_place_to_a_channel_of_its_own():
    """Two fragments (rays of one place, different segments) end in one channel; two places of
    one class end in two; rays without a place feel nothing; a batch without places gives 0."""
    torch.manual_seed(0)
    place = torch.tensor([0] * 4 + [0] * 4 + [1] * 4 + [-1] * 4)
    logits = torch.zeros(16, 6).requires_grad_(True)  # opacities start equal in every channel
    optimiser = torch.optim.Adam([logits], lr=0.1)
    for _ in range(100):
        optimiser.zero_grad()
        loss = clustering.place_seed_loss(torch.sigmoid(logits), place)
        loss.backward()
        assert logits.grad[place < 0].abs().sum() == 0
        optimiser.step()
    chosen = torch.sigmoid(logits)[:, 1:].argmax(-1) + 1
    assert chosen[:8].tolist() == [1] * 8  # place 0 -> channel 1, both fragments
    assert chosen[8:12].tolist() == [2] * 4  # place 1 -> channel 2
    assert float(loss.detach()) < 0.1
    # more places than object channels wrap around: place 5 of 5 object channels seeds channel 1
    wrapped = clustering.place_seed_loss(torch.nn.functional.one_hot(torch.tensor([1]), 6).float(), torch.tensor([5]))
    assert math.isclose(float(wrapped), 0.0, abs_tol=1e-5)
    assert float(clustering.place_seed_loss(torch.rand(4, 6), torch.full((4,), -1))) == 0.0
