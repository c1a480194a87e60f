"""Image metrics: PSNR of renderings and absolute relative depth error.

* ``psnr = -10 log10(mean((pred - gt)^2))`` over all pixels and channels of float images in [0, 1]
  (reference §1.9); identical images give ``inf``.
* ``AbsRel = mean(|pred - gt| / gt)`` over the pixels with ``gt > 0``. For a scene-level value
  accumulate the sum and count over all frames with :class:`DepthAccumulator`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr", "depth_abs_rel", "depth_abs_rel_terms", "DepthAccumulator"]


def psnr(pred_rgb: np.ndarray, gt_rgb: np.ndarray) -> float:
    """PSNR in dB of two float (H, W, 3) (or any equal-shape) images with values in [0, 1]."""
    pred = np.asarray(pred_rgb, dtype=np.float64)
    gt = np.asarray(gt_rgb, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"images must have the same shape, got {pred.shape} and {gt.shape}")
    mse = float(np.mean((pred - gt) ** 2))
    return math.inf if mse == 0.0 else -10.0 * math.log10(mse)


def depth_abs_rel_terms(pred_depth: np.ndarray, gt_depth: np.ndarray) -> tuple[float, int]:
    """(sum of |pred - gt| / gt, number of pixels) over the pixels of (H, W) ``gt_depth`` > 0."""
    pred = np.asarray(pred_depth, dtype=np.float64)
    gt = np.asarray(gt_depth, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"depth maps must have the same shape, got {pred.shape} and {gt.shape}")
    valid = gt > 0
    return float(np.sum(np.abs(pred[valid] - gt[valid]) / gt[valid])), int(valid.sum())


def depth_abs_rel(pred_depth: np.ndarray, gt_depth: np.ndarray) -> float:
    """Mean |pred - gt| / gt over pixels with gt > 0 (NaN if there are none); (H, W) maps in metres."""
    total, count = depth_abs_rel_terms(pred_depth, gt_depth)
    return total / count if count else math.nan


class DepthAccumulator:
    """Scene-level AbsRel: the error summed over all valid GT pixels of all frames, divided once."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def update(self, pred_depth: np.ndarray, gt_depth: np.ndarray) -> None:
        total, count = depth_abs_rel_terms(pred_depth, gt_depth)
        self.total += total
        self.count += count

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else math.nan
