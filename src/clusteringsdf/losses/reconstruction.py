"""Reconstruction losses on rendered rays: colour, depth, normals."""

from __future__ import annotations

import torch


def rgb_l1(rendered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute colour error; rendered/target (R, 3) in [0, 1]."""
    return (rendered - target).abs().mean()


def depth_l1(rendered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Metric depth: mean |d - d*| over rays with target depth (> 0); (R,) normalised units."""
    valid = target > 0
    if not bool(valid.any()):
        return rendered.sum() * 0.0
    return (rendered[valid] - target[valid]).abs().mean()


def depth_scale_shift_invariant(rendered: torch.Tensor, target: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Scale-and-shift-invariant depth loss (MiDaS) for monocular depth.

    Per group (frame) of rays, solve min_{a,b} sum (a d + b - d*)^2 in closed form (detached), then
    the mean squared residual. rendered/target/group (R,).
    """
    valid = target > 0
    if not bool(valid.any()):
        return rendered.sum() * 0.0
    d, t, g = rendered[valid], target[valid], group[valid]
    groups, index = torch.unique(g, return_inverse=True)
    k = groups.shape[0]

    def per_group(x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(k, dtype=x.dtype, device=x.device).index_add_(0, index, x)

    with torch.no_grad():
        n = per_group(torch.ones_like(d))
        s_dd, s_d, s_dt, s_t = per_group(d * d), per_group(d), per_group(d * t), per_group(t)
        det = n * s_dd - s_d * s_d
        scale = torch.where(det.abs() > 1e-12, (n * s_dt - s_d * s_t) / det, torch.ones_like(det))
        shift = torch.where(det.abs() > 1e-12, (s_dd * s_t - s_d * s_dt) / det, s_t / n - s_d / n)
    aligned = scale[index] * d + shift[index]
    return ((aligned - t) ** 2).mean()


def normal_losses(rendered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1, 1 - cos) between unit camera-frame normals (R, 3); rays with zero target are skipped."""
    valid = target.norm(dim=-1) > 0.5
    if mask is not None:
        valid = valid & mask
    if not bool(valid.any()):
        zero = rendered.sum() * 0.0
        return zero, zero
    n = rendered[valid]
    n = n / (n.norm(dim=-1, keepdim=True) + 1e-6)
    t = target[valid]
    return (n - t).abs().sum(-1).mean(), (1.0 - (n * t).sum(-1)).mean()
