"""Mask2Former-like machine labels made from the ground-truth panoptic segments of each frame.

The noise model (all sizes in pixels are given for a 320-pixel-wide image and scale with the width;
parameters per level are the fields of :class:`NoiseParams`, see :data:`NOISE_LEVELS`):

0. **Input segments.** Every visible THING object is one segment; all visible pixels of one STUFF
   class (all walls, all cabinets, ...) form one segment, as Mask2Former's panoptic merging does; the
   unlabelled (void, class 0) object is a segment the segmenter always calls ``otherprop`` (stuff).
1. **Boundary jitter (e).** The segment map is resampled (nearest neighbour) through a smooth random
   displacement field: two independent Gaussian fields on a grid of ``warp_cell_px`` cells, bicubically
   upsampled, normalised to unit standard deviation and multiplied by ``warp_px``. Thin parts may vanish.
2. **Misses (b).** Each segment is missed with probability ``min(0.95, miss_base + miss_small *
   exp(-area / miss_small_area) + miss_border * touches_border * exp(-area / miss_border_area))``
   (``area`` = fraction of the image after the warp; ``touches_border`` = 1 if the segment reaches the
   image border, i.e. it is truncated; the border term fades for segments much larger than
   ``miss_border_area``, so walls and floors are not dropped for being cut by the frame).
   A missed segment smaller than ``absorb_max_area`` is, with probability ``absorb_prob``, absorbed
   into the non-missed neighbour with which it shares the longest boundary (it takes that segment's
   id and class); otherwise it becomes unlabelled (semantic 0, instance 0, segment 0).
3. **Merges (c).** Every pair of touching THING segments (sharing at least ``merge_min_contact_px``
   4-neighbour pixel pairs) is merged with probability ``merge_prob`` (union-find, pairs in increasing
   id order); a merged segment keeps the class of its largest member.
4. **Splits (d).** Every THING segment covering at least ``split_min_area`` of the image is split with
   probability ``split_prob`` into two ids along a random straight line (uniform angle, through the
   centroid shifted by up to 0.25 standard deviations of the pixel projections); splits that would
   leave less than 15 % on either side are skipped.
5. **Class confusions (f).** Each segment's class is replaced, with probability ``confuse_thing``
   (THING classes) or ``confuse_stuff`` (stuff classes), by one class drawn uniformly from
   :data:`CONFUSIONS` (chair<->sofa, bed<->sofa, table<->cabinet, cabinet<->shelves/refrigerator,
   television<->otherprop, bag<->otherprop, wall<->ceiling, wall<->door, window<->curtain/wall ...).
   The floor is never confused. A segment whose emitted class is STUFF loses its instance id, and
   stuff segments of the same emitted class are merged into one segment (as after step 0).
6. **Ids (a).** Segments are numbered with two GLOBAL running counters shared by all frames (in frame
   order): ``m2f_instance`` = one new id per THING segment (0 for stuff / unlabelled) and
   ``m2f_segments`` = one new id per segment of any kind (0 for unlabelled). No id is ever reused, so
   ids are never consistent across views.
7. **Confidence (g).** ``c = conf_boundary + (c_seg - conf_boundary) * (1 - exp(-d / conf_boundary_width_px))``
   with ``d`` the Euclidean distance (pixels) to the nearest segment boundary and
   ``c_seg = conf_interior`` times ``conf_confused`` (class confused), ``conf_merged`` (merged),
   ``conf_split`` (split) and ``conf_void`` (the void object) where they apply; absorbed pixels are
   multiplied by ``conf_absorbed``; unlabelled pixels get ``conf_unlabelled``. A smooth noise field
   (unit std) times ``conf_noise`` is added and the result is clipped to [0, 1].
8. **Probabilities (g).** At 1/4 of the image resolution (``ceil(H/4) x ceil(W/4)``; label of the pixel
   at ``4i+2, 4j+2``, confidence averaged over the 4x4 block), a distribution over the 22 classes with
   ``peak = 0.4 + 0.55 * confidence`` on the emitted class, half of the remaining mass on one
   alternative class (the true class of a confused segment, else the first plausible confusion of the
   emitted class, else the emitted class itself) and the other half spread uniformly over all classes.
   The emitted class is always the arg-max. Unlabelled pixels peak on class 0.

Parameters per level (pixel sizes at 320 px width; areas are fractions of the image)::

    parameter                low     medium  high
    warp_px                  0.8     2.0     3.5
    warp_cell_px             40      32      26
    miss_base                0.0     0.005   0.02
    miss_small               0.2     0.45    0.7
    miss_small_area          0.002   0.003   0.004
    miss_border              0.05    0.12    0.25
    miss_border_area         0.015   0.02    0.03
    absorb_prob              0.5     0.5     0.5
    absorb_max_area          0.02    0.02    0.02
    merge_prob               0.03    0.1     0.22
    merge_min_contact_px     4       4       4
    split_prob               0.02    0.07    0.15
    split_min_area           0.02    0.02    0.015
    confuse_thing            0.03    0.08    0.18
    confuse_stuff            0.01    0.03    0.07
    conf_interior            0.97    0.95    0.92
    conf_boundary            0.45    0.35    0.25
    conf_boundary_width_px   2       3       4
    conf_unlabelled          0.1     0.1     0.1
    conf_confused            0.6     0.6     0.6
    conf_merged              0.7     0.7     0.7
    conf_split               0.75    0.75    0.75
    conf_absorbed            0.7     0.7     0.7
    conf_void                0.55    0.55    0.55
    conf_noise               0.02    0.04    0.06

Everything is drawn from the ``numpy.random.Generator`` passed in (the generator derives one per frame
from the scene seed), never from global state, so labels are deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..classes import NUM_CLASSES, THING_CLASSES

VOID_CLASS = 0
OTHERPROP_CLASS = 21
REFERENCE_WIDTH = 320.0

# Plausible confusions of the reduced ScanNet classes (class -> classes it may be mistaken for).
CONFUSIONS: dict[int, tuple[int, ...]] = {
    1: (13, 8),  # wall -> ceiling, door
    3: (7, 11, 14),  # cabinet -> table, shelves, refrigerator
    4: (6,),  # bed -> sofa
    5: (6,),  # chair -> sofa
    6: (5, 4),  # sofa -> chair, bed
    7: (3,),  # table -> cabinet
    8: (1, 3),  # door -> wall, cabinet
    9: (12, 1),  # window -> curtain, wall
    11: (3,),  # shelves -> cabinet
    13: (1,),  # ceiling -> wall
    14: (3,),  # refrigerator -> cabinet
    15: (21,),  # television -> otherprop
    20: (21,),  # bag -> otherprop
    21: (15, 20),  # otherprop -> television, bag
}


@dataclass(frozen=True)
class NoiseParams:
    """Parameters of the machine-label noise model (see the module docstring for their meaning).

    Pixel quantities are for a 320-pixel-wide image and scale with the image width.
    """

    warp_px: float
    warp_cell_px: float
    miss_base: float
    miss_small: float
    miss_small_area: float
    miss_border: float
    miss_border_area: float
    absorb_prob: float
    absorb_max_area: float
    merge_prob: float
    merge_min_contact_px: float
    split_prob: float
    split_min_area: float
    confuse_thing: float
    confuse_stuff: float
    conf_interior: float
    conf_boundary: float
    conf_boundary_width_px: float
    conf_unlabelled: float
    conf_confused: float
    conf_merged: float
    conf_split: float
    conf_absorbed: float
    conf_void: float
    conf_noise: float


NOISE_LEVELS: dict[str, NoiseParams] = {
    "low": NoiseParams(
        warp_px=0.8, warp_cell_px=40.0,
        miss_base=0.0, miss_small=0.2, miss_small_area=0.002, miss_border=0.05, miss_border_area=0.015, absorb_prob=0.5, absorb_max_area=0.02,
        merge_prob=0.03, merge_min_contact_px=4.0, split_prob=0.02, split_min_area=0.02,
        confuse_thing=0.03, confuse_stuff=0.01,
        conf_interior=0.97, conf_boundary=0.45, conf_boundary_width_px=2.0, conf_unlabelled=0.1,
        conf_confused=0.6, conf_merged=0.7, conf_split=0.75, conf_absorbed=0.7, conf_void=0.55, conf_noise=0.02,
    ),
    "medium": NoiseParams(
        warp_px=2.0, warp_cell_px=32.0,
        miss_base=0.005, miss_small=0.45, miss_small_area=0.003, miss_border=0.12, miss_border_area=0.02, absorb_prob=0.5, absorb_max_area=0.02,
        merge_prob=0.1, merge_min_contact_px=4.0, split_prob=0.07, split_min_area=0.02,
        confuse_thing=0.08, confuse_stuff=0.03,
        conf_interior=0.95, conf_boundary=0.35, conf_boundary_width_px=3.0, conf_unlabelled=0.1,
        conf_confused=0.6, conf_merged=0.7, conf_split=0.75, conf_absorbed=0.7, conf_void=0.55, conf_noise=0.04,
    ),
    "high": NoiseParams(
        warp_px=3.5, warp_cell_px=26.0,
        miss_base=0.02, miss_small=0.7, miss_small_area=0.004, miss_border=0.25, miss_border_area=0.03, absorb_prob=0.5, absorb_max_area=0.02,
        merge_prob=0.22, merge_min_contact_px=4.0, split_prob=0.15, split_min_area=0.015,
        confuse_thing=0.18, confuse_stuff=0.07,
        conf_interior=0.92, conf_boundary=0.25, conf_boundary_width_px=4.0, conf_unlabelled=0.1,
        conf_confused=0.6, conf_merged=0.7, conf_split=0.75, conf_absorbed=0.7, conf_void=0.55, conf_noise=0.06,
    ),
}


@dataclass
class IdCounters:
    """Global running counters of machine instance and segment ids (next id to hand out)."""

    next_instance: int = 1
    next_segment: int = 1


@dataclass
class FrameLabels:
    """Machine labels of one frame: label maps (H, W) int64, ``confidence`` (H, W) float32 and
    ``probability`` (ceil(H/4), ceil(W/4), 22) float32; ``instance_to_semantic`` maps the frame's
    new instance ids to classes; ``stats`` counts what the noise did."""

    semantics: np.ndarray
    instance: np.ndarray
    segments: np.ndarray
    confidence: np.ndarray
    probability: np.ndarray
    instance_to_semantic: dict[int, int]
    stats: dict[str, int] = field(default_factory=dict)


def smooth_field(rng: np.random.Generator, height: int, width: int, cell: float, channels: int) -> np.ndarray:
    """Smooth random fields (channels, H, W) with unit standard deviation and correlation length ``cell`` px."""
    cell = max(float(cell), 1.0)
    gh, gw = int(np.ceil(height / cell)) + 3, int(np.ceil(width / cell)) + 3
    coarse = rng.standard_normal((channels, gh, gw))
    yy = (np.arange(height) + 0.5) / cell + 1.0
    xx = (np.arange(width) + 0.5) / cell + 1.0
    grid_y, grid_x = np.meshgrid(yy, xx, indexing="ij")
    out = np.stack([ndimage.map_coordinates(coarse[c], [grid_y, grid_x], order=3, mode="nearest") for c in range(channels)])
    std = out.reshape(channels, -1).std(axis=1)
    return out / np.maximum(std, 1e-6)[:, None, None]


def _adjacency(labels: np.ndarray) -> dict[tuple[int, int], int]:
    """Counts of 4-neighbour pixel pairs between different labels, keyed (smaller, larger)."""
    a = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    b = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    differ = a != b
    lo, hi = np.minimum(a[differ], b[differ]), np.maximum(a[differ], b[differ])
    top = int(labels.max()) + 1
    codes, counts = np.unique(lo.astype(np.int64) * top + hi, return_counts=True)
    return {(int(c // top), int(c % top)): int(n) for c, n in zip(codes, counts)}


def _boundary(labels: np.ndarray) -> np.ndarray:
    edge = np.zeros(labels.shape, dtype=bool)
    dh = labels[:, 1:] != labels[:, :-1]
    dv = labels[1:, :] != labels[:-1, :]
    edge[:, 1:] |= dh
    edge[:, :-1] |= dh
    edge[1:, :] |= dv
    edge[:-1, :] |= dv
    return edge


def synthesize_frame(
    segments: np.ndarray,
    segment_class: np.ndarray,
    params: NoiseParams,
    rng: np.random.Generator,
    counters: IdCounters,
    thing_classes: tuple[int, ...] = THING_CLASSES,
    num_classes: int = NUM_CLASSES,
) -> FrameLabels:
    """Machine labels of one frame.

    Args:
        segments: GT panoptic segments (H, W), local ids 1..S, 0 = nothing.
        segment_class: (S + 1,) true class of each local id (0 = void object).
        params: noise parameters.
        rng: this frame's generator.
        counters: global id counters, advanced in place.
    """
    height, width = segments.shape
    scale = width / REFERENCE_WIDTH
    things = set(int(c) for c in thing_classes)
    seg = segments.astype(np.int64)
    true_class = [int(c) for c in segment_class]
    stats = {"segments": 0, "missed": 0, "absorbed": 0, "merged": 0, "split": 0, "confused": 0}

    # 1. boundary jitter
    if params.warp_px > 0:
        field_xy = smooth_field(rng, height, width, params.warp_cell_px * scale, 2) * (params.warp_px * scale)
        yy, xx = np.mgrid[0:height, 0:width]
        src_x = np.clip(np.rint(xx + field_xy[0]), 0, width - 1).astype(np.int64)
        src_y = np.clip(np.rint(yy + field_xy[1]), 0, height - 1).astype(np.int64)
        seg = seg[src_y, src_x]

    # 2. misses: unlabelled or absorbed into the neighbour with the longest shared boundary
    area = np.bincount(seg.ravel(), minlength=len(true_class)) / float(height * width)
    present = [int(i) for i in np.flatnonzero(area) if i > 0]
    stats["segments"] = len(present)
    on_border = set(np.unique(np.concatenate([seg[0], seg[-1], seg[:, 0], seg[:, -1]])).tolist())
    missed = {}
    for sid in present:
        p = params.miss_base + params.miss_small * np.exp(-area[sid] / params.miss_small_area)
        p += params.miss_border * (sid in on_border) * np.exp(-area[sid] / params.miss_border_area)
        missed[sid] = bool(rng.random() < min(p, 0.95))
    lut = np.arange(len(true_class), dtype=np.int64)
    adjacency = _adjacency(seg)
    was_missed = np.zeros(len(true_class), dtype=bool)
    for sid in present:
        if not missed[sid]:
            continue
        stats["missed"] += 1
        was_missed[sid] = True
        absorb = rng.random() < params.absorb_prob and area[sid] < params.absorb_max_area
        target = 0
        if absorb:
            best = -1
            for (a, b), count in adjacency.items():
                other = b if a == sid else a if b == sid else -1
                if other > 0 and not missed[other] and (count > best or (count == best and other < target)):
                    best, target = count, other
        lut[sid] = target
        stats["absorbed"] += int(target > 0)
    absorbed_pixels = was_missed[seg] & (lut[seg] > 0)
    seg = lut[seg]

    # 3. merges of touching thing segments (union-find, representative = largest member)
    area = np.bincount(seg.ravel(), minlength=len(true_class)).astype(np.float64)
    parent = list(range(len(true_class)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    min_contact = max(1.0, params.merge_min_contact_px * scale)
    merged_flag = np.zeros(len(true_class), dtype=bool)
    for (a, b), count in sorted(_adjacency(seg).items()):
        if a == 0 or true_class[a] not in things or true_class[b] not in things or count < min_contact:
            continue
        if rng.random() < params.merge_prob:
            ra, rb = find(a), find(b)
            if ra != rb:
                keep, drop = (ra, rb) if (area[ra], -ra) >= (area[rb], -rb) else (rb, ra)
                parent[drop] = keep
                area[keep] += area[drop]
                merged_flag[keep] = True
                stats["merged"] += 1
    roots = np.array([find(i) for i in range(len(true_class))], dtype=np.int64)
    seg = roots[seg]

    # 4. splits of large thing segments along a random line
    flags_split: set[int] = set()
    next_id = len(true_class)
    extra_class: list[int] = []
    extra_merged: list[bool] = []
    for sid in [int(i) for i in np.unique(seg) if i > 0]:
        if true_class[sid] not in things or np.count_nonzero(seg == sid) < params.split_min_area * height * width:
            continue
        if rng.random() >= params.split_prob:
            continue
        angle = rng.uniform(0.0, np.pi)
        shift = rng.uniform(-0.25, 0.25)
        ys, xs = np.nonzero(seg == sid)
        proj = (xs - xs.mean()) * np.cos(angle) + (ys - ys.mean()) * np.sin(angle)
        side = proj > shift * proj.std()
        if not 0.15 < side.mean() < 0.85:
            continue
        seg[ys[side], xs[side]] = next_id
        extra_class.append(true_class[sid])
        extra_merged.append(bool(merged_flag[sid]))
        flags_split.update({sid, next_id})
        next_id += 1
        stats["split"] += 1
    true_class = true_class + extra_class
    merged_flag = np.concatenate([merged_flag, np.array(extra_merged, dtype=bool)])

    # 5. class confusions, then stuff segments of one emitted class merge
    final_ids = [int(i) for i in np.unique(seg) if i > 0]
    emitted: dict[int, int] = {}
    confused: set[int] = set()
    for sid in final_ids:
        cls = true_class[sid]
        if cls == VOID_CLASS:
            emitted[sid] = OTHERPROP_CLASS
            continue
        options = CONFUSIONS.get(cls, ())
        p = params.confuse_thing if cls in things else params.confuse_stuff
        if options and rng.random() < p:
            emitted[sid] = int(options[int(rng.integers(len(options)))])
            confused.add(sid)
            stats["confused"] += 1
        else:
            emitted[sid] = cls
    stuff_owner: dict[int, int] = {}
    relabel = np.arange(next_id, dtype=np.int64)
    for sid in final_ids:
        if emitted[sid] not in things:
            owner = stuff_owner.setdefault(emitted[sid], sid)
            relabel[sid] = owner
    seg = relabel[seg]

    # 6. global ids
    class_lut = np.zeros(next_id, dtype=np.int64)
    instance_lut = np.zeros(next_id, dtype=np.int64)
    segment_lut = np.zeros(next_id, dtype=np.int64)
    conf_lut = np.full(next_id, params.conf_unlabelled)
    alt_lut = np.zeros(next_id, dtype=np.int64)
    members: dict[int, list[int]] = {}
    for sid in final_ids:
        members.setdefault(int(relabel[sid]), []).append(sid)
    instance_to_semantic: dict[int, int] = {}
    for owner in sorted(members):
        group = members[owner]
        cls = emitted[owner]
        class_lut[owner] = cls
        segment_lut[owner] = counters.next_segment
        counters.next_segment += 1
        if cls in things:
            instance_lut[owner] = counters.next_instance
            instance_to_semantic[counters.next_instance] = cls
            counters.next_instance += 1
        c = params.conf_interior
        if any(s in confused for s in group):
            c *= params.conf_confused
        if any(merged_flag[s] for s in group):
            c *= params.conf_merged
        if any(s in flags_split for s in group):
            c *= params.conf_split
        if any(true_class[s] == VOID_CLASS for s in group):
            c *= params.conf_void
        conf_lut[owner] = c
        if owner in confused or true_class[owner] == VOID_CLASS:
            alt_lut[owner] = true_class[owner]
        else:
            options = CONFUSIONS.get(cls, ())
            alt_lut[owner] = options[0] if options else cls

    # 7. confidence
    distance = ndimage.distance_transform_edt(~_boundary(seg))
    width_px = max(params.conf_boundary_width_px * scale, 0.5)
    seg_conf = conf_lut[seg]
    confidence = params.conf_boundary + (seg_conf - params.conf_boundary) * (1.0 - np.exp(-distance / width_px))
    confidence = np.where(seg == 0, params.conf_unlabelled, confidence)
    confidence = np.where(absorbed_pixels & (seg > 0), confidence * params.conf_absorbed, confidence)
    if params.conf_noise > 0:
        confidence = confidence + params.conf_noise * smooth_field(rng, height, width, 24.0 * scale, 1)[0]
    confidence = np.clip(confidence, 0.0, 1.0).astype(np.float32)

    # 8. class probabilities at a quarter of the resolution
    semantics = class_lut[seg]
    probability = class_probabilities(semantics, alt_lut[seg], confidence, num_classes)
    return FrameLabels(
        semantics=semantics,
        instance=instance_lut[seg],
        segments=segment_lut[seg],
        confidence=confidence,
        probability=probability,
        instance_to_semantic=instance_to_semantic,
        stats=stats,
    )


def class_probabilities(semantics: np.ndarray, alternative: np.ndarray, confidence: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class probabilities (ceil(H/4), ceil(W/4), C) peaked on the emitted class (see step 8)."""
    height, width = semantics.shape
    h, w = -(-height // 4), -(-width // 4)
    rows = np.minimum(np.arange(h) * 4 + 2, height - 1)
    cols = np.minimum(np.arange(w) * 4 + 2, width - 1)
    emitted = semantics[np.ix_(rows, cols)]
    alt = alternative[np.ix_(rows, cols)]
    padded = np.pad(confidence, ((0, h * 4 - height), (0, w * 4 - width)), mode="edge")
    conf = padded.reshape(h, 4, w, 4).mean(axis=(1, 3))
    peak = 0.4 + 0.55 * conf
    rest = 1.0 - peak
    prob = np.broadcast_to((0.5 * rest / num_classes)[..., None], (h, w, num_classes)).copy()
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    prob[ii, jj, emitted] += peak
    prob[ii, jj, alt] += 0.5 * rest
    return prob.astype(np.float32)
