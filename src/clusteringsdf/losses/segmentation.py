"""Supervised segmentation losses: ObjectSDF++'s opacity BCE and the semantic head's cross entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def opacity_bce(opacity: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
    """ObjectSDF++: BCE(clamp(O, 1e-4, 1 - 1e-4), onehot(channel)), mean over rays and channels.

    opacity (R, C); channel (R,) target channel, -1 = ignore.
    """
    valid = channel >= 0
    if not bool(valid.any()):
        return opacity.sum() * 0.0
    o = opacity[valid].clamp(1e-4, 1 - 1e-4)
    target = F.one_hot(channel[valid], opacity.shape[1]).to(o.dtype)
    return F.binary_cross_entropy(o, target)


def semantic_cross_entropy(probabilities: torch.Tensor, labels: torch.Tensor, confidence: torch.Tensor | None = None) -> torch.Tensor:
    """Confidence-weighted cross entropy of rendered class probabilities (R, K) against labels (R,).

    Label 0 (void / no segment) and out-of-range labels are ignored.
    """
    valid = (labels > 0) & (labels < probabilities.shape[1])
    if not bool(valid.any()):
        return probabilities.sum() * 0.0
    log_p = torch.log(probabilities[valid].clamp_min(1e-6))
    nll = -log_p.gather(1, labels[valid].unsqueeze(-1)).squeeze(-1)
    if confidence is not None:
        nll = nll * confidence[valid]
    return nll.mean()


def opacity_nll(opacity: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the labelled channel, -log(o_k / sum_j o_j), mean over rays.

    For opacities that form a distribution over channels (density shares), this is the cross
    entropy of "which channel owns the surface": one term per ray, so the C - 1 negatives do not
    outweigh the positive as in a per-channel BCE. opacity (R, C); channel (R,), -1 = ignore.
    """
    valid = channel >= 0
    if not bool(valid.any()):
        return opacity.sum() * 0.0
    o = opacity[valid]
    p = o / o.sum(-1, keepdim=True).clamp_min(1e-6)
    return -torch.log(p.gather(1, channel[valid].unsqueeze(-1)).clamp_min(1e-6)).mean()
