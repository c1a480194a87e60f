"""Scene-level semantic mIoU as scored by Panoptic Lifting / Contrastive Lift (reference §1.7).

One confusion matrix is accumulated over all test frames (GT-void pixels removed by the caller).
``IoU_c = M_cc / (row_c + col_c - M_cc)`` with 0/0 -> NaN; classes whose share is below ``robust``
in **both** the prediction and the GT (an AND, unlike PQ's OR) are set to NaN; ``mIoU`` is the
nan-mean. Class 0 is not ignored: predicting it on >= 0.5 % of the valid pixels costs an IoU-0 class.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["confusion_matrix", "mean_iou"]


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 (C, C) confusion matrix, rows = GT class, columns = predicted class.

    Args:
        pred: int array of predicted classes, any shape.
        gt: int array of GT classes, same number of elements as ``pred``.
        num_classes: C. Pixels whose *predicted* label is outside [0, C) are ignored (the reference
            applies its range mask to the prediction).

    Raises:
        ValueError: if sizes differ or a GT label (of a pixel not ignored) is outside [0, C).
    """
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    gt = np.asarray(gt, dtype=np.int64).reshape(-1)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same number of pixels, got {pred.size} and {gt.size}")
    keep = (pred >= 0) & (pred < num_classes)
    pred, gt = pred[keep], gt[keep]
    if gt.size and (gt.min() < 0 or gt.max() >= num_classes):
        raise ValueError(f"GT labels must lie in [0, {num_classes}), got range [{gt.min()}, {gt.max()}]")
    counts = np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def mean_iou(confusion: np.ndarray, robust: float = 0.005) -> tuple[float, np.ndarray]:
    """(mIoU, per-class IoU (C,) float64 with NaN for absent or doubly-rare classes) of a (C, C) matrix."""
    confusion = np.asarray(confusion, dtype=np.float64)
    diagonal = np.diag(confusion)
    gt_total = confusion.sum(axis=1)
    pred_total = confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = diagonal / (gt_total + pred_total - diagonal)
        total = confusion.sum()
        if total > 0:
            rare = (gt_total / total < robust) & (pred_total / total < robust)
            iou[rare] = np.nan
    if np.all(np.isnan(iou)):
        return math.nan, iou
    return float(np.nanmean(iou)), iou
