"""Evaluation: scene-level panoptic quality and mIoU (Panoptic Lifting protocol), edge accuracy,
PSNR / depth error, and the folder driver behind ``clusteringsdf eval``."""

from .edges import edge_accuracy
from .image_metrics import DepthAccumulator, depth_abs_rel, psnr
from .panoptic import PanopticAccumulator, PanopticResult, panoptic_quality
from .scoring import evaluate_predictions
from .semantic import confusion_matrix, mean_iou

__all__ = [
    "DepthAccumulator",
    "PanopticAccumulator",
    "PanopticResult",
    "confusion_matrix",
    "depth_abs_rel",
    "edge_accuracy",
    "evaluate_predictions",
    "mean_iou",
    "panoptic_quality",
    "psnr",
]
