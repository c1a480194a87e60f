"""Scene-level panoptic quality (PQ^scene) exactly as scored by Panoptic Lifting / Contrastive Lift.

The pixel label is the pair ``(semantic_class, instance_id)``; the valid pixels of all test frames
are concatenated into one (N, 2) "super image" and PQ is computed once, so an object whose predicted
id changes between views is split into several predicted segments.

Algorithm (reference §1.4, steps 1-9):

1. drop categories absent from both prediction and GT;
2. drop "rare" categories: present in the prediction with a share < ``robust`` of the N rows, **or**
   present in the GT with a share < ``robust`` (an OR);
3. void colour ``v = (1 + max({0} | kept), 0)``;
4. canonicalise both sides: kept stuff classes get instance 0, rows of any class that is not kept
   (filtered, absent, unknown) become ``v``;
5. segment areas and the joint (pred segment, GT segment) histogram;
6. a same-class pair matches when ``I / (|s| - I(s, v) + |t| - I(v, t) - I) > 0.5`` (strict);
7. an unmatched GT segment is a FN unless more than half of it is predicted void;
8. an unmatched predicted segment is a FP unless more than half of it lies on GT void;
9. per class PQ/SQ/RQ (0 when the denominator is 0) and plain means over the kept classes.

Everything is computed from weighted rows, so :class:`PanopticAccumulator` can compact each frame
into its distinct ``(pred pair, GT pair)`` rows with counts and give exactly the same result as the
concatenation of all pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

__all__ = ["PanopticResult", "PanopticAccumulator", "panoptic_quality", "panoptic_quality_weighted"]

_INT64_LIMIT = 2**62


@dataclass
class PanopticResult:
    """Scene-level panoptic scores.

    ``pq, sq, rq`` are plain means over all kept classes (things and stuff together); the
    ``*_things`` / ``*_stuff`` means are over the kept thing / kept stuff classes. Any mean over an
    empty set is NaN. ``per_class`` maps each kept class to ``{"tp", "fp", "fn", "iou_sum", "pq",
    "sq", "rq", "thing"}``. Iterating (or unpacking) yields ``(pq, sq, rq)`` in the reference order.
    """

    pq: float
    sq: float
    rq: float
    pq_things: float
    pq_stuff: float
    sq_things: float
    sq_stuff: float
    rq_things: float
    rq_stuff: float
    per_class: dict[int, dict] = field(default_factory=dict)

    def __iter__(self) -> Iterator[float]:
        return iter((self.pq, self.sq, self.rq))


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _encode_pairs(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of an int (M, 2) array and the inverse index (M,), via single int64 keys."""
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    low = pairs.min(axis=0)
    span = pairs.max(axis=0) - low + 1
    if int(span[0]) * int(span[1]) < _INT64_LIMIT:
        keys = (pairs[:, 0] - low[0]) * span[1] + (pairs[:, 1] - low[1])
        unique_keys, inverse = np.unique(keys, return_inverse=True)
        unique_rows = np.stack([unique_keys // span[1] + low[0], unique_keys % span[1] + low[1]], axis=1)
    else:  # ids too spread out for one int64 key: row-wise unique (slower, same result)
        unique_rows, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return unique_rows.astype(np.int64), inverse.reshape(-1).astype(np.int64)


def _canonicalise(pairs: np.ndarray, kept: np.ndarray, kept_stuff: np.ndarray, void: int) -> np.ndarray:
    """Step 4: kept stuff -> instance 0, classes not kept -> the void row (void, 0). (M, 2) -> (M, 2)."""
    out = pairs.copy()
    out[np.isin(out[:, 0], kept_stuff), 1] = 0
    not_kept = ~np.isin(out[:, 0], kept)
    out[not_kept, 0] = void
    out[not_kept, 1] = 0
    return out


def _class_shares(classes: np.ndarray, weights: np.ndarray, total: float) -> dict[int, float]:
    values, inverse = np.unique(classes, return_inverse=True)
    counts = np.bincount(inverse.reshape(-1), weights=weights, minlength=len(values))
    return {int(c): float(n) / total for c, n in zip(values, counts) if n > 0}


def _checked_rows(pred: np.ndarray, gt: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pred`` and ``gt`` as int64 (M, 2) rows and ``weights`` as float64 (M,) (ones for None);
    ValueError when the shapes disagree."""
    pred = np.asarray(pred, dtype=np.int64).reshape(-1, 2)
    gt = np.asarray(gt, dtype=np.int64).reshape(-1, 2)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape, got {pred.shape} and {gt.shape}")
    w = np.ones(len(pred), dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(pred),):
        raise ValueError(f"weights must have shape ({len(pred)},), got {w.shape}")
    return pred, gt, w


def _kept_classes(pred: np.ndarray, gt: np.ndarray, w: np.ndarray, robust: float) -> set[int]:
    """Steps 1-2: the classes of the (M, 2) rows present in ``pred`` or ``gt`` that are not rare
    (a share of the weights (M,) under ``robust`` in either)."""
    total = float(w.sum())
    share_p = _class_shares(pred[:, 0], w, total) if total > 0 else {}
    share_t = _class_shares(gt[:, 0], w, total) if total > 0 else {}
    present = set(share_p) | set(share_t)
    rare = {c for c, f in share_p.items() if f < robust} | {c for c, f in share_t.items() if f < robust}
    return present - rare


@dataclass
class _Overlaps:
    """Step 5 on canonical rows: the P predicted segments ``seg_p`` (P, 2) and T GT segments
    ``seg_t`` (T, 2) with their areas (P,) / (T,) and void flags; their non-zero overlaps as (K,)
    triples (``ps``, ``ts``, ``inter``); I(s, v) ``on_gt_void`` (P,): pixels of a predicted segment
    on GT void; I(v, t) ``pred_void`` (T,): pixels of a GT segment predicted void."""

    seg_p: np.ndarray
    seg_t: np.ndarray
    area_p: np.ndarray
    area_t: np.ndarray
    is_void_p: np.ndarray
    is_void_t: np.ndarray
    ps: np.ndarray
    ts: np.ndarray
    inter: np.ndarray
    on_gt_void: np.ndarray
    pred_void: np.ndarray


def _overlaps(pred_c: np.ndarray, gt_c: np.ndarray, w: np.ndarray, void: int) -> _Overlaps:
    """Step 5: segments, areas and the sparse joint histogram of canonical (M, 2) rows weighted by (M,)."""
    seg_p, inv_p = _encode_pairs(pred_c)
    seg_t, inv_t = _encode_pairs(gt_c)
    n_p, n_t = len(seg_p), len(seg_t)
    area_p = np.bincount(inv_p, weights=w, minlength=n_p)
    area_t = np.bincount(inv_t, weights=w, minlength=n_t)
    pair_codes, pair_inverse = np.unique(inv_p * n_t + inv_t, return_inverse=True)
    inter = np.bincount(pair_inverse.reshape(-1), weights=w, minlength=len(pair_codes))
    ps, ts = pair_codes // n_t, pair_codes % n_t
    nonzero = inter > 0
    ps, ts, inter = ps[nonzero], ts[nonzero], inter[nonzero]
    is_void_p = seg_p[:, 0] == void
    is_void_t = seg_t[:, 0] == void
    on_gt_void = np.zeros(n_p)
    on_gt_void[ps[is_void_t[ts]]] = inter[is_void_t[ts]]
    pred_void = np.zeros(n_t)
    pred_void[ts[is_void_p[ps]]] = inter[is_void_p[ps]]
    return _Overlaps(seg_p, seg_t, area_p, area_t, is_void_p, is_void_t, ps, ts, inter, on_gt_void, pred_void)


def _match(o: _Overlaps) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step 6: same-class pairs with void-adjusted IoU > 0.5. Returns which predicted (P,) and GT
    (T,) segments matched, and the GT segment index and IoU of each match (Q,)."""
    candidate = (~o.is_void_t[o.ts]) & (o.seg_p[o.ps, 0] == o.seg_t[o.ts, 0])
    cs, ct, ci = o.ps[candidate], o.ts[candidate], o.inter[candidate]
    union = o.area_p[cs] - o.on_gt_void[cs] + o.area_t[ct] - o.pred_void[ct] - ci
    iou = ci / union
    match = iou > 0.5
    matched_p = np.zeros(len(o.seg_p), dtype=bool)
    matched_t = np.zeros(len(o.seg_t), dtype=bool)
    matched_p[cs[match]] = True
    matched_t[ct[match]] = True
    return matched_p, matched_t, ct[match], iou[match]


def _segment_counts(o: _Overlaps, kept: set[int]) -> dict[int, dict]:
    """Steps 6-8: per kept class, true positives with their IoU sum, false negatives (unless mostly
    predicted void) and false positives (unless mostly on GT void)."""
    matched_p, matched_t, matched_gt, matched_iou = _match(o)
    stats = {c: {"tp": 0, "fp": 0, "fn": 0, "iou_sum": 0.0} for c in sorted(kept)}
    for t_index, value in zip(matched_gt, matched_iou):
        entry = stats[int(o.seg_t[t_index, 0])]
        entry["tp"] += 1
        entry["iou_sum"] += float(value)
    with np.errstate(divide="ignore", invalid="ignore"):
        fn_mask = (~o.is_void_t) & (~matched_t) & ~(o.pred_void / o.area_t > 0.5)
        fp_mask = (~o.is_void_p) & (~matched_p) & ~(o.on_gt_void / o.area_p > 0.5)
    for c in o.seg_t[fn_mask, 0]:
        stats[int(c)]["fn"] += 1
    for c in o.seg_p[fp_mask, 0]:
        stats[int(c)]["fp"] += 1
    return stats


def _scores(stats: dict[int, dict], kept_things: set[int], kept_stuff: set[int]) -> PanopticResult:
    """Step 9: per-class PQ/SQ/RQ (added to ``stats``) and their plain means."""
    for c, entry in stats.items():
        tp, fp, fn, iou_sum = entry["tp"], entry["fp"], entry["fn"], entry["iou_sum"]
        denominator = tp + 0.5 * fp + 0.5 * fn
        entry["pq"] = iou_sum / denominator if denominator > 0 else 0.0
        entry["sq"] = iou_sum / tp if tp > 0 else 0.0
        entry["rq"] = tp / denominator if denominator > 0 else 0.0
        entry["thing"] = c in kept_things

    def means(key: str) -> tuple[float, float, float]:
        return (
            _mean([e[key] for e in stats.values()]),
            _mean([stats[c][key] for c in sorted(kept_things)]),
            _mean([stats[c][key] for c in sorted(kept_stuff)]),
        )

    pq, pq_things, pq_stuff = means("pq")
    sq, sq_things, sq_stuff = means("sq")
    rq, rq_things, rq_stuff = means("rq")
    return PanopticResult(pq, sq, rq, pq_things, pq_stuff, sq_things, sq_stuff, rq_things, rq_stuff, stats)


def panoptic_quality_weighted(
    pred: np.ndarray,
    gt: np.ndarray,
    weights: np.ndarray | None,
    *,
    things: Iterable[int],
    stuff: Iterable[int],
    robust: float = 0.005,
) -> PanopticResult:
    """PQ^scene of weighted rows: row n stands for ``weights[n]`` pixels labelled ``pred[n]`` / ``gt[n]``.

    Args:
        pred: int (M, 2) predicted ``(class, instance)`` rows.
        gt: int (M, 2) GT rows.
        weights: (M,) non-negative pixel counts, or None for all ones.
        things, stuff: thing / stuff class ids.
        robust: minimum share of the N = sum(weights) pixels for a class to be kept.
    """
    pred, gt, w = _checked_rows(pred, gt, weights)
    kept = _kept_classes(pred, gt, w, robust)
    kept_things = {int(c) for c in things} & kept
    kept_stuff = {int(c) for c in stuff} & kept
    kept = kept_things | kept_stuff
    if not kept:
        nan = math.nan
        return PanopticResult(nan, nan, nan, nan, nan, nan, nan, nan, nan, {})
    # Steps 3-4: void colour and canonical rows.
    void = 1 + max(kept | {0})
    kept_arr = np.array(sorted(kept), dtype=np.int64)
    stuff_arr = np.array(sorted(kept_stuff), dtype=np.int64)
    overlaps = _overlaps(_canonicalise(pred, kept_arr, stuff_arr, void), _canonicalise(gt, kept_arr, stuff_arr, void), w, void)
    return _scores(_segment_counts(overlaps, kept), kept_things, kept_stuff)


def panoptic_quality(
    pred: np.ndarray,
    gt: np.ndarray,
    things: set[int],
    stuff: set[int],
    *,
    robust: float = 0.005,
) -> PanopticResult:
    """PQ^scene of int (N, 2) ``(semantic_class, instance_id)`` rows (valid pixels of all frames).

    GT-void pixels must already be removed by the caller (as the reference scorer does).
    """
    return panoptic_quality_weighted(pred, gt, None, things=things, stuff=stuff, robust=robust)


class PanopticAccumulator:
    """Collects frames for PQ^scene without keeping every pixel.

    Each :meth:`update` compacts the frame's valid pixels into distinct
    ``(pred class, pred id, GT class, GT id)`` rows with counts; :meth:`compute` scores the weighted
    rows, which equals :func:`panoptic_quality` on the concatenated pixels.
    """

    def __init__(self) -> None:
        self._rows: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []

    def update(self, pred_sem: np.ndarray, pred_ins: np.ndarray, gt_sem: np.ndarray, gt_ins: np.ndarray) -> None:
        """Add one frame's pixels; all four are int arrays of the same shape (e.g. (H, W) or (n,))."""
        columns = np.stack(
            [np.asarray(a, dtype=np.int64).reshape(-1) for a in (pred_sem, pred_ins, gt_sem, gt_ins)], axis=1
        )
        if len(columns) == 0:
            return
        low = columns.min(axis=0)
        span = columns.max(axis=0) - low + 1
        if math.prod(int(s) for s in span) < _INT64_LIMIT:
            keys = np.zeros(len(columns), dtype=np.int64)
            for k in range(4):
                keys = keys * span[k] + (columns[:, k] - low[k])
            unique_keys, counts = np.unique(keys, return_counts=True)
            rows = np.empty((len(unique_keys), 4), dtype=np.int64)
            rest = unique_keys
            for k in (3, 2, 1, 0):
                rows[:, k] = rest % span[k] + low[k]
                rest = rest // span[k]
        else:
            rows, counts = np.unique(columns, axis=0, return_counts=True)
        self._rows.append(rows)
        self._counts.append(counts.astype(np.int64))

    def compute(self, things: set[int], stuff: set[int], robust: float = 0.005) -> PanopticResult:
        rows = np.concatenate(self._rows) if self._rows else np.zeros((0, 4), dtype=np.int64)
        counts = np.concatenate(self._counts) if self._counts else np.zeros(0, dtype=np.int64)
        return panoptic_quality_weighted(rows[:, :2], rows[:, 2:], counts, things=things, stuff=stuff, robust=robust)
