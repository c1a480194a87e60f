"""Scene-level mIoU (reference §1.7), edge accuracy and image metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from clusteringsdf.evaluation import confusion_matrix, edge_accuracy, mean_iou, psnr
from clusteringsdf.evaluation.edges import edge_dice, edge_map
from clusteringsdf.evaluation.image_metrics import DepthAccumulator, depth_abs_rel

C = 22
WALL, FLOOR, CHAIR, TABLE = 1, 2, 5, 7


def labels(*runs: tuple[int, int]) -> np.ndarray:
    return np.array([c for c, n in runs for _ in range(n)], dtype=np.int64)


# ------------------------------------------------------------------------------------------ mIoU


def test_reference_worked_example_one():
    # GT 6 wall, 3 floor, 1 chair; pred wall on 5 wall px, floor on the 6th, floor on floor, wall on chair.
    gt = labels((WALL, 6), (FLOOR, 3), (CHAIR, 1))
    pred = labels((WALL, 5), (FLOOR, 1), (FLOOR, 3), (WALL, 1))
    miou, iou = mean_iou(confusion_matrix(pred, gt, C))
    assert iou[WALL] == pytest.approx(5 / 7) and iou[FLOOR] == pytest.approx(0.75) and iou[CHAIR] == 0.0
    assert round(miou, 5) == 0.48810


def test_reference_worked_example_two():
    # Same but the 6th wall px is predicted class 0: IoU_0 = 0, IoU_floor = 1 -> (0 + 5/7 + 1 + 0) / 4.
    gt = labels((WALL, 6), (FLOOR, 3), (CHAIR, 1))
    pred = labels((WALL, 5), (0, 1), (FLOOR, 3), (WALL, 1))
    miou, iou = mean_iou(confusion_matrix(pred, gt, C))
    assert iou[0] == 0.0 and iou[FLOOR] == 1.0
    assert round(miou, 5) == 0.42857


def test_absent_classes_are_nan_and_ignored():
    gt = labels((WALL, 5), (FLOOR, 5))
    miou, iou = mean_iou(confusion_matrix(gt, gt, C))
    assert miou == 1.0
    assert np.isnan(iou[[0, 3, CHAIR]]).all()


def test_rare_class_and_rule():
    # N = 400: GT 300 wall, 99 floor, 1 table; the table px is predicted chair.
    # table: GT share 0.0025, pred share 0 -> rare in both -> NaN; chair: pred 0.0025, GT 0 -> NaN.
    gt = labels((WALL, 300), (FLOOR, 99), (TABLE, 1))
    pred = labels((WALL, 300), (FLOOR, 99), (CHAIR, 1))
    miou, iou = mean_iou(confusion_matrix(pred, gt, C))
    assert math.isnan(iou[TABLE]) and math.isnan(iou[CHAIR]) and miou == 1.0
    # N = 400: GT 200 wall, 199 floor, 1 chair; pred chair on the chair px and on 99 floor px.
    # chair: GT share 0.0025 but pred share 0.25 -> NOT rare in both -> kept: IoU 1 / 100 = 0.01.
    # floor: I 100, GT 199, pred 100 -> 100/199. wall 1.
    gt = labels((WALL, 200), (FLOOR, 199), (CHAIR, 1))
    pred = labels((WALL, 200), (FLOOR, 100), (CHAIR, 99), (CHAIR, 1))
    miou, iou = mean_iou(confusion_matrix(pred, gt, C))
    assert iou[CHAIR] == pytest.approx(0.01)
    assert miou == pytest.approx((1 + 100 / 199 + 0.01) / 3)


def test_confusion_ignores_out_of_range_predictions():
    gt = labels((WALL, 4))
    pred = np.array([WALL, WALL, 99, -1])
    matrix = confusion_matrix(pred, gt, C)
    assert matrix.sum() == 2 and matrix[WALL, WALL] == 2
    with pytest.raises(ValueError):
        confusion_matrix(labels((WALL, 1)), labels((C, 1)), C)


def test_mean_iou_of_empty_matrix_is_nan():
    miou, iou = mean_iou(np.zeros((C, C), dtype=np.int64))
    assert math.isnan(miou) and np.isnan(iou).all()


# ------------------------------------------------------------------------------------ edge accuracy


def square_scene(pred_cols: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """10x10 wall frame with a GT chair at rows 2-5, cols 2-5 and a predicted chair at rows 2-5, pred_cols."""
    gt_sem = np.full((10, 10), WALL)
    gt_sem[2:6, 2:6] = CHAIR
    gt_ins = np.where(gt_sem == CHAIR, 3, 0)
    pred_sem = np.full((10, 10), WALL)
    pred_sem[2:6, pred_cols[0] : pred_cols[1] + 1] = CHAIR
    pred_ins = np.where(pred_sem == CHAIR, 11, 0)
    return pred_sem, pred_ins, gt_sem, gt_ins


def test_edge_map_ignores_image_border():
    assert not edge_map(np.ones((5, 5), bool)).any()
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    assert edge_map(mask).sum() == 8  # ring of the 3x3 square, centre excluded


def test_edge_accuracy_perfect_prediction():
    pred_sem, pred_ins, gt_sem, gt_ins = square_scene((2, 5))
    assert edge_accuracy([gt_sem], [gt_ins * 5], [gt_sem], [gt_ins], things={CHAIR}) == 1.0
    # a one-pixel boundary shift is within the tolerance
    pred_sem, pred_ins, gt_sem, gt_ins = square_scene((2, 6))
    assert edge_accuracy([pred_sem], [pred_ins], [gt_sem], [gt_ins], things={CHAIR}) == 1.0


def test_edge_accuracy_hand_computed():
    # GT chair rows 2-5 x cols 2-5 (edges: ring of 12 px). Pred chair rows 2-5 x cols 2-7 (ring of 16 px).
    # chair: all 12 GT edge px have a pred edge within 3x3; pred edges at col 7 (4 px) have none -> 12 of 16.
    #   Dice = (12 + 12) / (12 + 16) = 6/7.
    # wall (paired with pred wall, 76 of its 84 px): GT wall edges = the 16 px 4-adjacent to the GT square,
    #   (1, 2..5), (6, 2..5), (2..5, 1), (2..5, 6); pred wall edges = 20 px: (1, 2..7), (6, 2..7), (2..5, 1),
    #   (2..5, 8). Matched GT: all but (3, 6), (4, 6) -> 14. Matched pred: all but (2..5, 8) -> 16.
    #   Dice = (14 + 16) / (16 + 20) = 5/6.
    # EA = (6/7 + 5/6) / 2 = 71/84.
    pred_sem, pred_ins, gt_sem, gt_ins = square_scene((2, 7))
    ea = edge_accuracy([pred_sem], [pred_ins], [gt_sem], [gt_ins], things={CHAIR})
    assert ea == pytest.approx(71 / 84)
    # GT void (class 0) forms no GT segment; a second frame averages over (frame, segment) pairs.
    void_gt = np.where(gt_sem == WALL, 0, gt_sem)
    ea2 = edge_accuracy([pred_sem, pred_sem], [pred_ins] * 2, [gt_sem, void_gt], [gt_ins] * 2, things={CHAIR})
    assert ea2 == pytest.approx((6 / 7 + 5 / 6 + 6 / 7) / 3)


def test_edge_dice_crop_equals_full_frame():
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = rng.random((20, 24)) < 0.3
        b = np.zeros_like(a)
        b[3:15, 5:20] = True
        full_gt, full_pred = edge_map(a), edge_map(b)
        sq = np.ones((3, 3), bool)
        expected = ((full_gt & ndimage.binary_dilation(full_pred, sq)).sum()
                    + (full_pred & ndimage.binary_dilation(full_gt, sq)).sum()) / (full_gt.sum() + full_pred.sum())
        assert edge_dice(a, b) == pytest.approx(expected)


# ------------------------------------------------------------------------------------ image metrics


def test_psnr_and_depth_abs_rel():
    gt = np.full((4, 4, 3), 0.5)
    assert psnr(gt + 0.1, gt) == pytest.approx(20.0)  # mse 0.01 -> 20 dB
    assert psnr(gt, gt) == math.inf
    gt_depth = np.array([[2.0, 0.0], [4.0, 1.0]])
    pred_depth = np.array([[2.2, 9.0], [3.0, 1.0]])
    # valid px: |0.2|/2 = 0.1, |1|/4 = 0.25, 0 -> mean 0.35/3
    assert depth_abs_rel(pred_depth, gt_depth) == pytest.approx(0.35 / 3)
    acc = DepthAccumulator()
    acc.update(pred_depth, gt_depth)
    acc.update(np.full((1, 2), 1.5), np.ones((1, 2)))  # two px of 0.5
    assert acc.value == pytest.approx((0.35 + 1.0) / 5)
