"""Scene-level panoptic quality: reference §1.4 invariants, hand-computed examples, oracle cross-check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clusteringsdf.evaluation import PanopticResult, panoptic_quality
from clusteringsdf.evaluation.panoptic import PanopticAccumulator

THINGS = {4, 5}  # bed, chair
STUFF = {0, 1, 2}  # void, wall, floor
WALL, FLOOR, BED, CHAIR = 1, 2, 4, 5


def rows(*runs: tuple[int, int, int]) -> np.ndarray:
    """(class, id, count) runs -> int (N, 2) rows."""
    return np.array([[c, i] for c, i, n in runs for _ in range(n)], dtype=np.int64).reshape(-1, 2)


def literal_pq(pred, gt, things, stuff, robust=0.005):
    """Slow, literal transcription of reference §1.4 with Python loops over pixels (oracle)."""
    pred = [tuple(map(int, r)) for r in pred]
    gt = [tuple(map(int, r)) for r in gt]
    n = len(pred)
    cls_p = {c for c, _ in pred}
    cls_t = {c for c, _ in gt}
    unused = (things | stuff) - (cls_p | cls_t)
    nonrobust = {c for c in cls_p if sum(1 for r in pred if r[0] == c) / n < robust}
    nonrobust |= {c for c in cls_t if sum(1 for r in gt if r[0] == c) / n < robust}
    kt, ks = things - unused - nonrobust, stuff - unused - nonrobust
    kept = kt | ks
    if not kept:
        return None
    void = (1 + max({0} | kept), 0)

    def canon(r):
        if r[0] in ks:
            return (r[0], 0)
        return r if r[0] in kept else void

    pred, gt = [canon(r) for r in pred], [canon(r) for r in gt]
    area_p, area_t, inter = {}, {}, {}
    for p, t in zip(pred, gt):
        area_p[p] = area_p.get(p, 0) + 1
        area_t[t] = area_t.get(t, 0) + 1
        inter[(p, t)] = inter.get((p, t), 0) + 1
    stats = {c: [0, 0, 0, 0.0] for c in kept}  # tp fp fn iou_sum
    mp, mt = set(), set()
    for (p, t), i in inter.items():
        if t == void or p[0] != t[0]:
            continue
        union = area_p[p] - inter.get((p, void), 0) + area_t[t] - inter.get((void, t), 0) - i
        if i / union > 0.5:
            stats[t[0]][0] += 1
            stats[t[0]][3] += i / union
            mp.add(p)
            mt.add(t)
    for t in area_t:
        if t != void and t not in mt and not inter.get((void, t), 0) / area_t[t] > 0.5:
            stats[t[0]][2] += 1
    for p in area_p:
        if p != void and p not in mp and not inter.get((p, void), 0) / area_p[p] > 0.5:
            stats[p[0]][1] += 1
    pqs, sqs, rqs = [], [], []
    for tp, fp, fn, s in stats.values():
        d = tp + 0.5 * fp + 0.5 * fn
        pqs.append(s / d if d else 0.0)
        sqs.append(s / tp if tp else 0.0)
        rqs.append(tp / d if d else 0.0)
    return float(np.mean(pqs)), float(np.mean(sqs)), float(np.mean(rqs))


def random_scene(rng: np.random.Generator, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Random GT blocks and a noisy prediction with a few extra / unknown classes."""
    gt_cls = rng.choice([1, 2, 4, 5, 9], size=n, p=[0.3, 0.2, 0.2, 0.28, 0.02])
    gt = np.stack([np.sort(gt_cls), np.zeros(n, dtype=np.int64)], axis=1)
    gt[:, 1] = np.where(np.isin(gt[:, 0], [4, 5]), np.arange(n) // 40 + 1, 0)  # objects of <= 40 px
    pred = gt.copy()
    flip = rng.random(n) < 0.25
    pred[flip, 0] = rng.choice([0, 1, 2, 4, 5, 7], size=int(flip.sum()))
    relabel = rng.random(n) < 0.2
    pred[relabel, 1] = rng.integers(0, 6, size=int(relabel.sum()))
    return pred, gt


# ------------------------------------------------------------------------------ invariants (§1.5)


def test_identical_prediction_scores_one():
    rng = np.random.default_rng(0)
    _, gt = random_scene(rng)
    result = panoptic_quality(gt, gt, THINGS, STUFF)
    assert isinstance(result, PanopticResult)
    assert (result.pq, result.sq, result.rq) == (1.0, 1.0, 1.0)
    assert result.pq_things == result.pq_stuff == 1.0


def test_bijective_relabel_of_predicted_ids_is_invariant():
    rng = np.random.default_rng(1)
    pred, gt = random_scene(rng)
    ids = np.unique(pred[:, 1])
    permuted = dict(zip(ids.tolist(), (rng.permutation(len(ids)) * 7 + 100).tolist()))
    relabelled = pred.copy()
    relabelled[:, 1] = [permuted[i] for i in pred[:, 1]]
    a = panoptic_quality(pred, gt, THINGS, STUFF)
    b = panoptic_quality(relabelled, gt, THINGS, STUFF)
    assert (a.pq, a.sq, a.rq) == pytest.approx((b.pq, b.sq, b.rq), abs=1e-12)


def test_iou_exactly_half_is_not_a_match():
    # GT: 6 wall, chair id 3 on 4 px. Pred: wall on 6 wall px + 2 chair px, chair (5,1) on 2 chair px.
    # chair: I = 2, union = 2 + 4 - 2 = 4 -> IoU 0.5 -> no match -> TP 0, FP 1, FN 1 -> PQ/SQ/RQ 0.
    # wall: I = 6, union = 8 + 6 - 6 = 8 -> IoU 0.75 -> PQ 0.75, SQ 0.75, RQ 1.
    gt = rows((WALL, 0, 6), (CHAIR, 3, 4))
    pred = rows((WALL, 0, 6), (WALL, 0, 2), (CHAIR, 1, 2))
    r = panoptic_quality(pred, gt, THINGS, STUFF)
    assert r.per_class[CHAIR]["tp"] == 0 and r.per_class[CHAIR]["fp"] == 1 and r.per_class[CHAIR]["fn"] == 1
    assert (r.pq, r.sq, r.rq) == pytest.approx((0.375, 0.375, 0.5))
    # one more correct chair pixel: chair IoU 3/4 -> match; wall IoU 6/7.
    pred = rows((WALL, 0, 6), (WALL, 0, 1), (CHAIR, 1, 3))
    r = panoptic_quality(pred, gt, THINGS, STUFF)
    assert r.per_class[CHAIR]["tp"] == 1
    assert r.pq == pytest.approx((0.75 + 6 / 7) / 2)


def test_stuff_instance_ids_are_irrelevant():
    rng = np.random.default_rng(2)
    pred, gt = random_scene(rng)
    noisy_pred, noisy_gt = pred.copy(), gt.copy()
    for array in (noisy_pred, noisy_gt):
        stuff_rows = np.isin(array[:, 0], list(STUFF))
        array[stuff_rows, 1] = rng.integers(0, 50, size=int(stuff_rows.sum()))
    a = panoptic_quality(pred, gt, THINGS, STUFF)
    b = panoptic_quality(noisy_pred, noisy_gt, THINGS, STUFF)
    assert (a.pq, a.sq, a.rq) == (b.pq, b.sq, b.rq)


def test_predicted_id_reused_for_two_classes_forms_two_segments():
    # GT: wall 2, chair id 1 on 4 px, bed id 2 on 4 px. Pred uses id 3 for both the chair and the bed:
    # (5,3) and (4,3) are different segments, each matches its GT with IoU 1 -> everything perfect.
    gt = rows((WALL, 0, 2), (CHAIR, 1, 4), (BED, 2, 4))
    pred = rows((WALL, 0, 2), (CHAIR, 3, 4), (BED, 3, 4))
    r = panoptic_quality(pred, gt, THINGS, STUFF)
    assert (r.pq, r.sq, r.rq) == (1.0, 1.0, 1.0)
    assert r.per_class[CHAIR]["tp"] == 1 and r.per_class[BED]["tp"] == 1


def test_cross_view_id_change_splits_segment_and_differs_from_per_frame_average():
    # Two frames, each: 6 wall, 4 chair (GT id 7). Prediction: chair id 1 in frame 1, id 2 in frame 2.
    # Per frame: perfect (PQ 1 each, average 1). Scene level: GT chair (5,7) has 8 px; predicted
    # segments (5,1) and (5,2) have 4 px each -> IoU 4/8 = 0.5 each -> no match: TP 0, FP 2, FN 1.
    # chair PQ 0, wall PQ 1 -> PQ = SQ = RQ = 0.5.
    frame_gt = rows((WALL, 0, 6), (CHAIR, 7, 4))
    frame1, frame2 = rows((WALL, 0, 6), (CHAIR, 1, 4)), rows((WALL, 0, 6), (CHAIR, 2, 4))
    per_frame = [panoptic_quality(p, frame_gt, THINGS, STUFF).pq for p in (frame1, frame2)]
    assert per_frame == [1.0, 1.0]
    scene = panoptic_quality(np.concatenate([frame1, frame2]), np.concatenate([frame_gt, frame_gt]), THINGS, STUFF)
    assert scene.per_class[CHAIR] == {
        "tp": 0, "fp": 2, "fn": 1, "iou_sum": 0.0, "pq": 0.0, "sq": 0.0, "rq": 0.0, "thing": True
    }
    assert (scene.pq, scene.sq, scene.rq) == (0.5, 0.5, 0.5)
    assert scene.pq != np.mean(per_frame)


def test_output_order_is_pq_sq_rq():
    # Unequal merged objects (see test_two_merged_objects): PQ 0.75, SQ 0.875, RQ 5/6.
    gt = rows((WALL, 0, 2), (CHAIR, 1, 6), (CHAIR, 2, 2))
    pred = rows((WALL, 0, 2), (CHAIR, 9, 8))
    pq, sq, rq = panoptic_quality(pred, gt, THINGS, STUFF)
    assert (pq, sq, rq) == pytest.approx((0.75, 0.875, 5 / 6))


# --------------------------------------------------------------------------------- own examples


def test_two_merged_objects():
    # Equal chairs (4 + 4 px) merged into one predicted segment of 8 px: IoU 4/8 = 0.5 with each ->
    # no match: chair TP 0, FP 1, FN 2 -> 0; wall 1 -> PQ = SQ = RQ = 0.5.
    gt = rows((WALL, 0, 2), (CHAIR, 1, 4), (CHAIR, 2, 4))
    r = panoptic_quality(rows((WALL, 0, 2), (CHAIR, 9, 8)), gt, THINGS, STUFF)
    assert r.per_class[CHAIR]["fp"] == 1 and r.per_class[CHAIR]["fn"] == 2
    assert (r.pq, r.sq, r.rq) == (0.5, 0.5, 0.5)
    # Unequal chairs (6 + 2 px): IoU with the big one 6/8 = 0.75 -> match; the small one is a FN.
    # chair: TP 1, FP 0, FN 1, iou_sum 0.75 -> PQ 0.75/1.5 = 0.5, SQ 0.75, RQ 2/3; wall 1.
    # PQ = 0.75, SQ = 0.875, RQ = 5/6; things-only = chair, stuff-only = wall.
    gt = rows((WALL, 0, 2), (CHAIR, 1, 6), (CHAIR, 2, 2))
    r = panoptic_quality(rows((WALL, 0, 2), (CHAIR, 9, 8)), gt, THINGS, STUFF)
    assert (r.pq, r.sq, r.rq) == pytest.approx((0.75, 0.875, 5 / 6))
    assert (r.pq_things, r.sq_things, r.rq_things) == pytest.approx((0.5, 0.75, 2 / 3))
    assert (r.pq_stuff, r.sq_stuff, r.rq_stuff) == (1.0, 1.0, 1.0)


def test_things_and_stuff_means():
    # GT: 4 wall, 4 floor, bed id 1 on 4 px, chair id 2 on 2 px. Pred: floor on 2 floor px, wall on the
    # other 2; the chair is predicted as bed id 8.
    # wall: pred 6, GT 4, I 4 -> IoU 2/3 -> PQ 2/3, SQ 2/3, RQ 1.
    # floor: I 2, union 2 + 4 - 2 = 4 -> IoU 0.5 -> no match -> TP 0, FP 1, FN 1 -> 0.
    # bed: (4,1) IoU 1 -> TP; (4,8) has no GT bed -> FP -> PQ 1/1.5 = 2/3, SQ 1, RQ 2/3.
    # chair: FN 1 -> 0.
    # stuff: PQ (2/3 + 0)/2, SQ (2/3 + 0)/2; things: PQ (2/3 + 0)/2, SQ (1 + 0)/2; all: PQ 1/3.
    gt = rows((WALL, 0, 4), (FLOOR, 0, 4), (BED, 1, 4), (CHAIR, 2, 2))
    pred = rows((WALL, 0, 4), (FLOOR, 0, 2), (WALL, 0, 2), (BED, 1, 4), (BED, 8, 2))
    r = panoptic_quality(pred, gt, THINGS, STUFF)
    assert r.pq_stuff == pytest.approx((2 / 3 + 0) / 2)
    assert r.pq_things == pytest.approx((2 / 3 + 0) / 2)
    assert r.sq_stuff == pytest.approx(2 / 3 / 2) and r.sq_things == pytest.approx(0.5)
    assert r.pq == pytest.approx(4 / 3 / 4)
    # only-stuff scene: things mean is NaN
    r = panoptic_quality(rows((WALL, 0, 5), (FLOOR, 0, 5)), rows((WALL, 0, 5), (FLOOR, 0, 5)), THINGS, STUFF)
    assert math.isnan(r.pq_things) and r.pq_stuff == 1.0


def test_void_handling():
    # stuff {1, 2}, things {5}; GT class 9 is unknown -> void. GT: 10 wall, 6 chair (5,1), 4 class-9 px.
    things, stuff = {5}, {1, 2}
    gt = rows((WALL, 0, 10), (CHAIR, 1, 6), (9, 0, 4))
    # (a) extra predicted chair (5,2) entirely on GT void: I(s,v)/|s| = 1 > 0.5 -> exempt from FP.
    pred = rows((WALL, 0, 10), (CHAIR, 1, 6), (CHAIR, 2, 4))
    r = panoptic_quality(pred, gt, things, stuff)
    assert (r.pq, r.sq, r.rq) == (1.0, 1.0, 1.0) and r.per_class[CHAIR]["fp"] == 0
    # (b) (5,2) on 2 void px + 2 wall px: exactly half on void -> not exempt -> FP.
    # chair: TP 1 (IoU 1), FP 1 -> PQ 2/3, SQ 1, RQ 2/3. The other 2 void px are predicted wall:
    # wall pred area 10 (8 on wall + 2 on void): union = 10 - 2 + 10 - 8 = 10, IoU 0.8 -> PQ=SQ=0.8, RQ 1.
    pred = rows((WALL, 0, 8), (CHAIR, 2, 2), (CHAIR, 1, 6), (CHAIR, 2, 2), (WALL, 0, 2))
    r = panoptic_quality(pred, gt, things, stuff)
    assert r.per_class[CHAIR]["fp"] == 1
    assert (r.pq, r.sq, r.rq) == pytest.approx(((0.8 + 2 / 3) / 2, 0.9, (1 + 2 / 3) / 2))
    # (c) GT chair predicted as an unknown class (void) -> exempt from FN; wall perfect -> chair PQ
    # has TP = FP = FN = 0 -> 0 (zeros included), so PQ = (1 + 0) / 2.
    pred = rows((WALL, 0, 10), (7, 0, 6), (9, 0, 4))
    r = panoptic_quality(pred, gt, things, stuff)
    assert r.per_class[CHAIR]["fn"] == 0 and r.pq == 0.5


def test_predicted_class_zero_is_an_extra_false_positive_category():
    # Q3: class 0 in stuff. GT (void already removed): 10 wall, 4 chair. Pred: class 0 on 2 wall px.
    # class 0 kept (share 2/14): one FP segment -> PQ_0 = 0; wall IoU 8/10 -> 0.8; chair 1.
    gt = rows((WALL, 0, 10), (CHAIR, 1, 4))
    pred = rows((WALL, 0, 8), (0, 0, 2), (CHAIR, 1, 4))
    r = panoptic_quality(pred, gt, THINGS, STUFF)
    assert set(r.per_class) == {0, WALL, CHAIR}
    assert r.pq == pytest.approx((0 + 0.8 + 1) / 3)


def test_rare_class_or_rule():
    # N = 400. GT: 200 wall, 199 floor, 1 chair px (share 0.0025 < 0.005). Pred: chair (5,1) on the chair
    # px and on 99 floor px (share 0.25). Rare in GT only -> dropped anyway (OR), its rows become void.
    # floor: pred 100 px, GT 199 px of which 99 predicted void -> union = 100 + 199 - 99 - 100 = 100 -> 1.
    gt = rows((WALL, 0, 200), (FLOOR, 0, 199), (CHAIR, 4, 1))
    pred = rows((WALL, 0, 200), (FLOOR, 0, 100), (CHAIR, 1, 99), (CHAIR, 1, 1))
    r = panoptic_quality(pred, gt, THINGS, STUFF)
    assert set(r.per_class) == {WALL, FLOOR}
    assert (r.pq, r.sq, r.rq) == (1.0, 1.0, 1.0)
    assert math.isnan(r.pq_things)
    # Rare in prediction only (1 predicted px of a class large in GT): dropped as well.
    gt = rows((WALL, 0, 200), (CHAIR, 4, 200))
    pred = rows((WALL, 0, 200), (CHAIR, 4, 1), (WALL, 0, 199))
    r = panoptic_quality(pred, gt, THINGS, STUFF)
    assert set(r.per_class) == {WALL}
    # A class absent from the prediction is not flagged by the prediction: chair kept and missed.
    gt = rows((WALL, 0, 200), (CHAIR, 4, 200))
    r = panoptic_quality(rows((WALL, 0, 400)), gt, THINGS, STUFF)
    assert set(r.per_class) == {WALL, CHAIR} and r.per_class[CHAIR]["fn"] == 1


def test_empty_kept_set_gives_nan():
    r = panoptic_quality(rows((9, 0, 5)), rows((9, 0, 5)), THINGS, STUFF)
    assert math.isnan(r.pq) and math.isnan(r.sq) and math.isnan(r.rq) and r.per_class == {}
    r = panoptic_quality(np.zeros((0, 2), int), np.zeros((0, 2), int), THINGS, STUFF)
    assert math.isnan(r.pq)


@pytest.mark.parametrize("seed", range(12))
def test_matches_literal_reference(seed):
    rng = np.random.default_rng(100 + seed)
    pred, gt = random_scene(rng, n=int(rng.integers(150, 400)))
    expected = literal_pq(pred, gt, THINGS, STUFF)
    got = panoptic_quality(pred, gt, THINGS, STUFF)
    assert (got.pq, got.sq, got.rq) == pytest.approx(expected, abs=1e-12)


def test_accumulator_equals_concatenation():
    rng = np.random.default_rng(7)
    acc = PanopticAccumulator()
    preds, gts = [], []
    for _ in range(3):
        pred, gt = random_scene(rng, n=200)
        pred[:, 1] += 10**9  # large ids exercise the int64 key encoding
        acc.update(pred[:, 0], pred[:, 1], gt[:, 0], gt[:, 1])
        preds.append(pred)
        gts.append(gt)
    a = acc.compute(THINGS, STUFF)
    b = panoptic_quality(np.concatenate(preds), np.concatenate(gts), THINGS, STUFF)
    assert (a.pq, a.sq, a.rq, a.pq_things) == pytest.approx((b.pq, b.sq, b.rq, b.pq_things), abs=1e-12)
    assert a.per_class.keys() == b.per_class.keys()
