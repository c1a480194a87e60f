"""Edge accuracy (EA), the boundary metric of the ClusteringSDF paper (§4.1).

The paper only says: "EA calculates the average Dice value between the edge of predicted and GT
labels, which are paired by matching the densest labels in the predicted result with each GT label".
We make it concrete as follows, per frame:

* A segment is a ``(semantic_class, instance_id)`` pair; the instance id of a class that is not a
  thing is ignored (set to 0), on both sides. GT pixels of class 0 (void) form no GT segment.
* Each GT segment is paired with the predicted segment that covers most of its pixels ("densest
  label"; ties go to the smallest ``(class, id)``). Predicted void is a valid partner.
* The edge map of a binary mask is the set of mask pixels with at least one 4-neighbour outside the
  mask; the image border is not an edge (pixels outside the image count as inside the mask).
* Dice with a 1-pixel tolerance, symmetric: an edge pixel of one map is matched when the other map
  has an edge pixel in its 3x3 neighbourhood;
  ``Dice = (matched_gt + matched_pred) / (|E_gt| + |E_pred|)``, and 1 when both maps are empty.
* EA is the mean Dice over all (frame, GT segment) pairs (NaN if there are none).

Work is done on the bounding box of both masks padded by 2 pixels, which gives exactly the
full-frame result.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import ndimage

from .panoptic import _encode_pairs

__all__ = ["edge_accuracy", "edge_map", "edge_dice", "frame_edge_dice"]

_CROSS = ndimage.generate_binary_structure(2, 1)
_SQUARE = np.ones((3, 3), dtype=bool)


def edge_map(mask: np.ndarray) -> np.ndarray:
    """bool (H, W): pixels of ``mask`` with a 4-neighbour outside it (image border is not an edge)."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=1)


def edge_dice(gt_mask: np.ndarray, pred_mask: np.ndarray) -> float:
    """Symmetric 1-pixel-tolerant Dice between the edge maps of two bool (H, W) masks."""
    gt_mask = np.asarray(gt_mask, dtype=bool)
    pred_mask = np.asarray(pred_mask, dtype=bool)
    rows, cols = np.nonzero(gt_mask | pred_mask)
    if rows.size == 0:
        return 1.0
    height, width = gt_mask.shape
    r0, r1 = max(rows.min() - 2, 0), min(rows.max() + 3, height)
    c0, c1 = max(cols.min() - 2, 0), min(cols.max() + 3, width)
    edges_gt = edge_map(gt_mask[r0:r1, c0:c1])
    edges_pred = edge_map(pred_mask[r0:r1, c0:c1])
    total = int(edges_gt.sum()) + int(edges_pred.sum())
    if total == 0:
        return 1.0
    matched_gt = int((edges_gt & ndimage.binary_dilation(edges_pred, structure=_SQUARE)).sum())
    matched_pred = int((edges_pred & ndimage.binary_dilation(edges_gt, structure=_SQUARE)).sum())
    return (matched_gt + matched_pred) / total


def _segment_ids(sem: np.ndarray, ins: np.ndarray, things: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) int segment index into the returned (S, 2) array of distinct ``(class, id)`` pairs."""
    sem = np.asarray(sem, dtype=np.int64)
    ins = np.where(np.isin(sem, list(things)), np.asarray(ins, dtype=np.int64), 0)
    unique, inverse = _encode_pairs(np.stack([sem.reshape(-1), ins.reshape(-1)], axis=1))
    return inverse.reshape(sem.shape), unique


def frame_edge_dice(
    pred_sem: np.ndarray, pred_ins: np.ndarray, gt_sem: np.ndarray, gt_ins: np.ndarray, *, things: set[int]
) -> list[float]:
    """Dice of every non-void GT segment of one frame (all four inputs int (H, W))."""
    shapes = {np.shape(a) for a in (pred_sem, pred_ins, gt_sem, gt_ins)}
    if len(shapes) != 1:
        raise ValueError(f"all label maps of a frame must have the same shape, got {sorted(shapes)}")
    gt_index, gt_pairs = _segment_ids(gt_sem, gt_ins, things)
    pred_index, _ = _segment_ids(pred_sem, pred_ins, things)
    n_pred = int(pred_index.max()) + 1 if pred_index.size else 0
    joint = np.bincount(
        gt_index.reshape(-1) * n_pred + pred_index.reshape(-1), minlength=len(gt_pairs) * n_pred
    ).reshape(len(gt_pairs), n_pred)
    gt_boxes = ndimage.find_objects(gt_index + 1)
    pred_boxes = ndimage.find_objects(pred_index + 1)
    height, width = gt_index.shape
    scores = []
    for g, (cls, _) in enumerate(gt_pairs):
        if cls == 0:
            continue
        best = int(np.argmax(joint[g]))  # first maximum = smallest (class, id) on ties
        # crop to both masks' bounding box plus a 2-pixel margin (exact, see edge_dice)
        (gr, gc), (pr, pc) = gt_boxes[g], pred_boxes[best]
        rows = slice(max(min(gr.start, pr.start) - 2, 0), min(max(gr.stop, pr.stop) + 2, height))
        cols = slice(max(min(gc.start, pc.start) - 2, 0), min(max(gc.stop, pc.stop) + 2, width))
        scores.append(edge_dice(gt_index[rows, cols] == g, pred_index[rows, cols] == best))
    return scores


def edge_accuracy(
    pred_sem_frames: Sequence[np.ndarray],
    pred_ins_frames: Sequence[np.ndarray],
    gt_sem_frames: Sequence[np.ndarray],
    gt_ins_frames: Sequence[np.ndarray],
    *,
    things: set[int],
) -> float:
    """Mean edge Dice over all (frame, GT segment) pairs; each list holds int (H, W) maps per frame."""
    counts = {len(pred_sem_frames), len(pred_ins_frames), len(gt_sem_frames), len(gt_ins_frames)}
    if len(counts) != 1:
        raise ValueError("edge_accuracy needs the same number of frames in all four lists")
    scores: list[float] = []
    for frame in zip(pred_sem_frames, pred_ins_frames, gt_sem_frames, gt_ins_frames):
        scores.extend(frame_edge_dice(*frame, things=set(things)))
    return float(np.mean(scores)) if scores else math.nan
