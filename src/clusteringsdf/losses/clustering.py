"""ClusteringSDF's self-organising losses (paper Eq. 4-9), vectorised over labels.

Rays are grouped by (frame, label): labels mean something only inside their own frame (machine
instance ids change from view to view). For every group g the cluster centre is the mean softmax
over channels of its rays' object opacities, ``mu_g = mean_{r in g} softmax(O_r)`` (C,). All terms
are computed from one (R, C) softmax, one index_add for the centres and one (G, G) distance matrix:
no Python loop over labels or label pairs. Degenerate batches (one label, no foreground, no
background, empty) give finite values (zero when a term has nothing to act on), never NaN.

Conventions: label 0 = background (stuff / no segment), labels < 0 = ignored rays.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .segmentation import semantic_cross_entropy


@dataclass
class Groups:
    """Ray groups of a batch: ``index`` (R,) group of each kept ray, ``frame``/``label`` (G,) per
    group, ``count`` (G,) rays per group, ``keep`` (R,) rays with a label >= 0."""

    index: torch.Tensor
    frame: torch.Tensor
    label: torch.Tensor
    count: torch.Tensor
    keep: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.frame.shape[0])


def make_groups(labels: torch.Tensor, frames: torch.Tensor) -> Groups:
    """Group rays by (frame, label); rays with label < 0 are left out. labels, frames: (R,) int64."""
    keep = labels >= 0
    lab, fr = labels[keep], frames[keep]
    span = int(lab.max()) + 1 if lab.numel() else 1
    keys, index = torch.unique(fr * span + lab, return_inverse=True)
    count = torch.bincount(index, minlength=keys.shape[0])
    return Groups(index=index, frame=keys // span, label=keys % span, count=count, keep=keep)


def cluster_centres(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Mean of ``values`` (R_kept, D) per group -> (G, D)."""
    sums = torch.zeros(groups.size, values.shape[1], dtype=values.dtype, device=values.device)
    sums = sums.index_add(0, groups.index, values)
    return sums / groups.count.clamp_min(1).unsqueeze(-1).to(values.dtype)


def _pair_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances (A, B) with a gradient that stays finite at zero distance."""
    diff = a.unsqueeze(1) - b.unsqueeze(0)
    return torch.sqrt((diff * diff).sum(-1) + 1e-12)


def differentiation_loss(centres: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Eq. 4: ``-1/(N(N-1)) sum_{i<j} ||mu_i - mu_j||`` per frame (N labels), averaged over frames
    with at least two labels; 0 when no frame has two."""
    distances = _pair_distances(centres, centres)
    same_frame = groups.frame.unsqueeze(0) == groups.frame.unsqueeze(1)
    upper = torch.triu(torch.ones_like(same_frame), diagonal=1)
    pair_mask = (same_frame & upper).to(centres.dtype)
    frames, frame_of_group = torch.unique(groups.frame, return_inverse=True)
    labels_per_frame = torch.bincount(frame_of_group, minlength=frames.shape[0]).to(centres.dtype)
    per_frame_sum = torch.zeros(frames.shape[0], dtype=centres.dtype, device=centres.device)
    per_frame_sum = per_frame_sum.index_add(0, frame_of_group, (distances * pair_mask).sum(1))
    valid = labels_per_frame >= 2
    if not bool(valid.any()):
        return centres.sum() * 0.0
    n = labels_per_frame[valid]
    return -(per_frame_sum[valid] / (n * (n - 1))).mean()


def regularization_loss(probabilities: torch.Tensor, groups: Groups, axis: str = "channels") -> torch.Tensor:
    """Eq. 6 over foreground groups (label != 0).

    ``channels`` (code / appendix A.2.2): the unbiased variance over channels of each ray's softmax,
    averaged per group, then over groups; it pushes every ray toward the uniform distribution and
    so slows the entropy reduction. ``rays``: the intra-cluster variance mean ||P_r - mu_g||^2.
    """
    foreground = groups.label != 0
    if not bool(foreground.any()):
        return probabilities.sum() * 0.0
    if axis == "channels":
        per_ray = probabilities.var(dim=-1, unbiased=True)
    elif axis == "rays":
        centres = cluster_centres(probabilities, groups)
        per_ray = ((probabilities - centres[groups.index]) ** 2).sum(-1)
    else:
        raise ValueError(f"unknown L_reg axis '{axis}'")
    per_group = torch.zeros(groups.size, dtype=probabilities.dtype, device=probabilities.device).index_add(0, groups.index, per_ray)
    per_group = per_group / groups.count.clamp_min(1).to(probabilities.dtype)
    return per_group[foreground].mean()


def onehot_loss(opacity: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 5 on foreground rays: squared distance between the raw opacities (R, C) and the one-hot
    of their arg-max (detached target), averaged over rays and channels (the published weighting)."""
    foreground = labels > 0
    if not bool(foreground.any()):
        return opacity.sum() * 0.0
    o = opacity[foreground]
    target = F.one_hot(o.detach().argmax(-1), o.shape[-1]).to(o.dtype)
    return ((o - target) ** 2).mean()


def foreground_background_loss(opacity: torch.Tensor, labels: torch.Tensor, bg_weight: float, fg_weight: float) -> torch.Tensor:
    """Eq. 7: ``bg_weight * mean_bg |O_0 - 1| + fg_weight * mean_fg |O_0|`` (each term 0 without rays)."""
    background, foreground = labels == 0, labels > 0
    total = opacity.sum() * 0.0
    if bool(background.any()):
        total = total + bg_weight * (opacity[background, 0] - 1.0).abs().mean()
    if bool(foreground.any()):
        total = total + fg_weight * opacity[foreground, 0].abs().mean()
    return total


def semantic_matching_loss(opacity: torch.Tensor, groups: Groups, confidence: torch.Tensor) -> torch.Tensor:
    """Eq. 8: ``mean_g conf_g * ||mu_g(O) - onehot(label_g)||`` over groups with label != 0.

    Groups are semantic classes and class u is channel u. The centre is taken of the raw opacities
    (the published code): a softmax of values in [0, 1] can never get close to a one-hot, the raw
    mean can. ``conf_g`` is the mean segmenter confidence of the group's rays.
    """
    keep = (groups.label > 0) & (groups.label < opacity.shape[1])
    if not bool(keep.any()):
        return opacity.sum() * 0.0
    centres = cluster_centres(opacity, groups)
    mean_confidence = cluster_centres(confidence.unsqueeze(-1), groups).squeeze(-1)
    target = F.one_hot(groups.label.clamp(0, opacity.shape[1] - 1), opacity.shape[1]).to(opacity.dtype)
    distance = (centres - target).norm(dim=-1)
    return (mean_confidence * distance)[keep].mean()


def semantic_ray_loss(opacity: torch.Tensor, labels: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Our addition to semantic mode: ``mean_r conf_r * -log(O_{r,u_r} / sum_c O_rc)`` over rays with
    a class label u_r > 0 (channel u = class u).

    Eq. 8 matches only the centre of each class, so a minority of a class's rays can sit in another
    class's channel (floor around a chair owned by the chair channel) while the centre stays close
    to its one-hot; this per-ray term reaches exactly those rays, hardest where they are most wrong.
    opacity (R, C); labels (R,); confidence (R,).
    """
    shares = opacity / opacity.sum(-1, keepdim=True).clamp_min(1e-6)
    return semantic_cross_entropy(shares, labels, confidence)


def cross_view_loss(probabilities: torch.Tensor, semantic: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Eq. 9 across the frames of a batch: ``exp(-mean ||mu_{f1,l1} - mu_{f2,l2}||)`` over pairs of
    (frame, semantic label) groups from different frames with different labels.

    ``semantic`` (R,) holds the machine semantic class of thing rays and -1 elsewhere; centres are of
    the instance softmax. Two objects of different classes that never share a view are pushed to
    different channels because they do share a batch. The published sum over pairs is replaced by
    the mean so the term does not vanish (exp(-sum)) as the number of pairs grows.
    """
    groups = make_groups(semantic, frames)
    if groups.size < 2:
        return probabilities.sum() * 0.0
    centres = cluster_centres(probabilities[groups.keep], groups)
    distances = _pair_distances(centres, centres)
    mask = (groups.frame.unsqueeze(0) != groups.frame.unsqueeze(1)) & (groups.label.unsqueeze(0) != groups.label.unsqueeze(1))
    if not bool(mask.any()):
        return probabilities.sum() * 0.0
    return torch.exp(-distances[mask].mean())


def class_coherence_loss(probabilities: torch.Tensor, labels: torch.Tensor, confidence: torch.Tensor, channel_classes: torch.Tensor) -> torch.Tensor:
    """Our addition: ``mean_r conf_r * sum_{c >= 1, k_c >= 0, k_c != u_r} P_rc`` over rays with a
    class label u_r >= 0: a ray's share of object channels that voted for another class.

    Two objects of different classes that no frame shows together get no within-frame push apart;
    when they share a channel, the class votes of that channel say so. probabilities (R, C) softmax
    over channels; labels (R,) class (-1: not counted); confidence (R,); channel_classes (C,) the
    class each channel voted for (-1: none yet; channel 0 is the background and never counted).
    """
    voted = channel_classes >= 0
    voted[0] = False
    other = voted.unsqueeze(0) & (channel_classes.unsqueeze(0) != labels.unsqueeze(-1))  # (R, C)
    wrong = (probabilities * other.to(probabilities.dtype)).sum(-1)
    counted = (labels >= 0).to(probabilities.dtype)  # masked, not indexed: no host sync on the training path
    return (confidence * counted * wrong).sum() / counted.sum().clamp_min(1.0)


def separation_loss(opacity: torch.Tensor, place: torch.Tensor, semantic: torch.Tensor, min_rays: int = 4) -> torch.Tensor:
    """Our addition: ``mean mu_a . mu_b`` over pairs of different 3D places a, b of one class
    (:mod:`clusteringsdf.sampling.places`). mu: a place's mean share of the object channels'
    opacity over its rays in the batch (channel 0, the background, left out, so the term never
    pushes rays to the background); mu_a . mu_b is the chance that a ray of each picks the same
    object channel. Shares of opacity, not the softmax over opacities the clustering terms use:
    that softmax of values in [0, 1] stays near uniform (1/31 for this dot product on a trained
    32-channel run), and a term on it barely moved. Places with under ``min_rays`` rays are left out.

    Two objects of one class that few frames show together (two chairs at either end of a table)
    get little within-frame push apart and no class signal; that no view links them says they are two.
    opacity (R, C) object opacities; place (R,) place of thing rays (-1: not counted); semantic (R,) class.
    """
    groups = make_groups(place, torch.zeros_like(place))
    kept = groups.keep
    objects = opacity[kept][:, 1:]
    shares = cluster_centres(objects / objects.sum(-1, keepdim=True).clamp_min(1e-6), groups)  # (G, C-1)
    label = torch.full((groups.size,), -1, dtype=semantic.dtype, device=semantic.device)
    label = label.scatter_reduce(0, groups.index, semantic[kept], "amax")
    enough = groups.count >= min_rays
    pairs = (label.unsqueeze(0) == label.unsqueeze(1)) & enough.unsqueeze(0) & enough.unsqueeze(1)
    pairs &= ~torch.eye(groups.size, dtype=torch.bool, device=pairs.device)
    weight = pairs.to(shares.dtype)  # masked, not indexed: no host sync on the training path
    return ((shares @ shares.T) * weight).sum() / weight.sum().clamp_min(1.0)


def place_seed_loss(opacity: torch.Tensor, place: torch.Tensor) -> torch.Tensor:
    """Our addition: Eq. 5's one-hot term with a fixed target, ``mean_r sum_{k>=1} (O_{r,k} - [k = c(p_r)])^2``
    over thing rays whose segment has a 3D place p_r (:mod:`clusteringsdf.sampling.places`), with the
    place's seed channel ``c(p) = 1 + p mod (C - 1)``. Places of one class are numbered
    consecutively, so they seed different channels while the object channels outnumber them.

    The clustering terms are blind to which channel a segment takes, so with many channels they
    must first break the symmetry, and most channels never win a pixel (4 of 63 on a 42-object
    scene). The seed gives every place a channel of its own from the first step; it fades out over
    the first part of the run (the method's schedule), after which the clustering terms alone
    decide. Squared, not a cross entropy of opacity shares: a ratio of near-zero opacities on rays
    whose mask bleeds onto the wall behind gives unbounded gradients that wreck the geometry.
    opacity (R, C) object opacities; place (R,) (-1: no place). 0 when no ray has a place.
    """
    channels = opacity.shape[1]
    placed = (place >= 0).to(opacity.dtype)  # masked, not indexed: no host sync on the training path
    seed = place.long().clamp_min(0) % (channels - 1)
    target = F.one_hot(seed, channels - 1).to(opacity.dtype)
    error = ((opacity[:, 1:] - target) ** 2).sum(-1)
    return (error * placed).sum() / placed.sum().clamp_min(1.0)
