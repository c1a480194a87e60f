"""Segment Anything (``transformers`` SamModel) automatic masks from a local checkpoint folder or a model id
(:mod:`.hf`). SAM 2 checkpoints are not supported: transformers' SAM 2 image processor needs torchvision.

Instances only (no classes). The automatic mode is done here rather than with transformers'
``mask-generation`` pipeline, whose post-processing needs torchvision (not a dependency): a grid of
``points_per_side``^2 single-point prompts on one image embedding, the best of SAM's three masks per
point, masks kept when the predicted IoU reaches ``iou_threshold`` and the mask is stable (the IoU of
the mask thresholded at +-``stability_offset`` logits reaches ``stability_threshold``), duplicates
removed greedily by score (mask IoU over ``duplicate_iou``), then painted largest first so smaller
masks stay on top. Confidence is the predicted IoU of a pixel's mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import FrameMasks, Segmenter
from .hf import checkpoint, load_pretrained

__all__ = ["SamSegmenter"]


class SamSegmenter(Segmenter):
    """Automatic SAM masks; class-agnostic."""

    name = "sam"

    def __init__(
        self,
        weights: str | Path | None,
        device: str = "cpu",
        *,
        points_per_side: int = 16,
        iou_threshold: float = 0.86,
        stability_threshold: float = 0.9,
        stability_offset: float = 1.0,
        duplicate_iou: float = 0.7,
        min_share: float = 0.002,
        batch: int = 64,
    ) -> None:
        weights, _ = checkpoint(weights, "--segmenter sam", ("sam", "sam_hq"), "facebook/sam-vit-base")
        from transformers import SamModel, SamProcessor

        self.processor, self.model = load_pretrained(weights, SamProcessor, SamModel, device=device, name="SAM")
        self.device = device
        self.points_per_side, self.batch = points_per_side, batch
        self.iou_threshold, self.stability_threshold, self.stability_offset = iou_threshold, stability_threshold, stability_offset
        self.duplicate_iou, self.min_share = duplicate_iou, min_share

    def segment(self, rgb: np.ndarray, depth: np.ndarray | None, k: np.ndarray | None) -> FrameMasks:
        import torch

        height, width = rgb.shape[:2]
        n = self.points_per_side
        xs = (np.arange(n) + 0.5) / n * width
        ys = (np.arange(n) + 0.5) / n * height
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        inputs = self.processor(images=rgb, return_tensors="pt")
        logits, scores = [], []
        with torch.no_grad():
            embeddings = self.model.get_image_embeddings(inputs["pixel_values"].to(self.device))
            for start in range(0, len(grid), self.batch):
                points = grid[start : start + self.batch]
                prompt = self.processor(images=rgb, input_points=[[[p.tolist()] for p in points]], return_tensors="pt")
                out = self.model(image_embeddings=embeddings, input_points=prompt["input_points"].to(self.device), multimask_output=True)
                masks = self.processor.post_process_masks(
                    out.pred_masks.cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"], binarize=False
                )[0]  # (P, 3, H, W) logits
                iou = out.iou_scores[0].cpu()  # (P, 3)
                best = iou.argmax(dim=1)
                picked = torch.arange(len(points))
                logits.append(masks[picked, best].numpy())
                scores.append(iou[picked, best].numpy())
        logits_all = np.concatenate(logits)
        score_all = np.concatenate(scores)
        return self._paint(logits_all, score_all, height, width)

    def _paint(self, logits: np.ndarray, scores: np.ndarray, height: int, width: int) -> FrameMasks:
        """Instance map from mask logits (P, H, W) and predicted IoUs (P,)."""
        masks = logits > 0.0
        high = (logits > self.stability_offset).sum(axis=(1, 2))
        low = (logits > -self.stability_offset).sum(axis=(1, 2))
        stability = high / np.maximum(low, 1)
        area = masks.sum(axis=(1, 2))
        ok = (scores >= self.iou_threshold) & (stability >= self.stability_threshold) & (area >= self.min_share * height * width)
        kept: list[int] = []
        for index in np.argsort(-scores):
            if not ok[index]:
                continue
            duplicate = any(
                (masks[index] & masks[j]).sum() / max((masks[index] | masks[j]).sum(), 1) > self.duplicate_iou for j in kept
            )
            if not duplicate:
                kept.append(int(index))
        instance = np.zeros((height, width), dtype=np.int32)
        confidence = np.zeros((height, width), dtype=np.float32)
        for new_id, index in enumerate(sorted(kept, key=lambda i: -area[i]), start=1):
            instance[masks[index]] = new_id
            confidence[masks[index]] = float(scores[index])
        return FrameMasks(instance=instance, confidence=confidence)
