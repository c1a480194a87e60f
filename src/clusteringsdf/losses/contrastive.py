"""Contrastive Lift's slow-fast contrastive loss (the comparison baseline; reference §3.3).

Per frame, the thing rays are split in two halves: "fast" anchors F (embeddings of the trained head)
and "slow" keys S (embeddings of an EMA copy of the head, no gradient). With y the machine instance
labels and c the confidences:

* concentration: ``L_conc = -mean_{l in L_F & L_S} mean_{i in F, y_i = l} c_i exp(-||f_i - mu_l||^2)``
  with ``mu_l`` the mean slow embedding of label l;
* contrastive: ``K_ij = exp(-||f_i - s_j||)``, ``p_i = sum_j [y_i = y_j] e^{K_ij} / sum_j e^{K_ij}``
  (j over the same frame's slow rays), ``L_con = -mean_{i: p_i > 0} log p_i``.

The contrastive term compares every anchor with every key: O(|R|^2) per frame, against the
clustering losses' O(N^2 |R|) (N labels). Frames of a batch are handled together with a same-frame
mask. Degenerate input (no thing rays, one half empty) gives 0.
"""

from __future__ import annotations

import torch


def split_halves(frames: torch.Tensor) -> torch.Tensor:
    """(R,) bool: True for the first half of each frame's rays (in batch order) = fast anchors."""
    order = torch.argsort(frames, stable=True)
    sorted_frames = frames[order]
    counts = torch.bincount(sorted_frames)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(frames.shape[0], device=frames.device) - starts[sorted_frames]
    fast_sorted = rank < (counts[sorted_frames] // 2)
    fast = torch.empty_like(fast_sorted)
    fast[order] = fast_sorted
    return fast


def slow_fast_loss(
    fast: torch.Tensor, slow: torch.Tensor, labels: torch.Tensor, frames: torch.Tensor, *, confidence: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_conc, L_con) on thing rays (labels > 0).

    fast, slow: (R, E) embeddings of the same rays (``slow`` is detached here); labels, frames (R,)
    int64; confidence (R,).
    """
    zero = fast.sum() * 0.0
    things = labels > 0
    if int(things.sum()) < 2:
        return zero, zero
    fast, slow, labels, frames, confidence = fast[things], slow[things].detach(), labels[things], frames[things], confidence[things]
    is_fast = split_halves(frames)
    f, f_label, f_frame, f_conf = fast[is_fast], labels[is_fast], frames[is_fast], confidence[is_fast]
    s, s_label, s_frame = slow[~is_fast], labels[~is_fast], frames[~is_fast]
    if f.shape[0] == 0 or s.shape[0] == 0:
        return zero, zero

    # Concentration: slow centroid of every (frame, label) group of the slow half.
    span = int(labels.max()) + 1
    s_key = s_frame * span + s_label
    keys, s_group = torch.unique(s_key, return_inverse=True)
    centroids = torch.zeros(keys.shape[0], s.shape[1], dtype=s.dtype, device=s.device).index_add(0, s_group, s)
    centroids = centroids / torch.bincount(s_group, minlength=keys.shape[0]).clamp_min(1).unsqueeze(-1).to(s.dtype)
    f_key = f_frame * span + f_label
    position = torch.searchsorted(keys, f_key).clamp(max=keys.shape[0] - 1)
    shared = keys[position] == f_key  # anchors whose label also appears among the slow rays
    if bool(shared.any()):
        attraction = f_conf[shared] * torch.exp(-((f[shared] - centroids[position[shared]]) ** 2).sum(-1))
        # mean over anchors of each label, then over labels
        groups, inverse = torch.unique(f_key[shared], return_inverse=True)
        per_label = torch.zeros(groups.shape[0], dtype=f.dtype, device=f.device).index_add(0, inverse, attraction)
        per_label = per_label / torch.bincount(inverse, minlength=groups.shape[0]).to(f.dtype)
        concentration = -per_label.mean()
    else:
        concentration = zero

    # Contrastive: every fast anchor against every slow key of its frame.
    distance = torch.cdist(f, s)  # (F, S)
    similarity = torch.exp(-distance)
    same_frame = f_frame.unsqueeze(1) == s_frame.unsqueeze(0)
    logits = torch.where(same_frame, similarity, torch.full_like(similarity, float("-inf")))
    log_normaliser = torch.logsumexp(logits, dim=1)
    positive = same_frame & (f_label.unsqueeze(1) == s_label.unsqueeze(0))
    has_positive = positive.any(dim=1)
    if not bool(has_positive.any()):
        return concentration, zero
    positive_logits = torch.where(positive, similarity, torch.full_like(similarity, float("-inf")))
    log_p = torch.logsumexp(positive_logits, dim=1) - log_normaliser
    return concentration, -log_p[has_positive].mean()


@torch.no_grad()
def ema_update(slow: torch.nn.Module, fast: torch.nn.Module, momentum: float = 0.9) -> None:
    """theta_slow <- momentum * theta_slow + (1 - momentum) * theta_fast."""
    for p_slow, p_fast in zip(slow.parameters(), fast.parameters()):
        p_slow.mul_(momentum).add_(p_fast.detach(), alpha=1.0 - momentum)
