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
    ``probability`` (ceil(H/4), ceil(W/4), 22) float32 (None for masks without classes);
    ``instance_to_semantic`` maps the frame's new instance ids to classes; ``stats`` counts what
    the noise did."""

    semantics: np.ndarray
    instance: np.ndarray
    segments: np.ndarray
    confidence: np.ndarray
    probability: np.ndarray | None
    instance_to_semantic: dict[int, int]
    stats: dict[str, int] = field(default_factory=dict)


def smooth_field(rng: np.random.Generator, height: int, width: int, cell: float, *, channels: int) -> np.ndarray:
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
    """Pixels (H, W) bool whose label differs from one of their 4 neighbours."""
    edge = np.zeros(labels.shape, dtype=bool)
    dh = labels[:, 1:] != labels[:, :-1]
    dv = labels[1:, :] != labels[:-1, :]
    edge[:, 1:] |= dh
    edge[:, :-1] |= dh
    edge[1:, :] |= dv
    edge[:-1, :] |= dv
    return edge


@dataclass
class _Noise:
    """What every noise stage of one frame uses: the parameters, the frame's generator, the THING
    classes, the pixel scale (image width / 320) and the counts of what the noise did."""

    params: NoiseParams
    rng: np.random.Generator
    things: set[int]
    scale: float
    stats: dict[str, int]


@dataclass
class _Segments:
    """The segment map of one frame as the noise stages change it.

    ``seg`` (H, W) int64 ids (0 = unlabelled); per id ``true_class[i]`` and ``merged[i]`` (bool,
    merged with a touching segment); ``split`` the ids cut in two or made by a cut; after the class
    confusions ``emitted`` maps ids to the class the segmenter emits and ``confused`` holds the ids
    whose class was replaced.
    """

    seg: np.ndarray
    true_class: list[int]
    merged: np.ndarray | None = None
    split: set[int] = field(default_factory=set)
    emitted: dict[int, int] = field(default_factory=dict)
    confused: set[int] = field(default_factory=set)


@dataclass
class _IdTables:
    """Per working id (N,): emitted class, global instance id, global segment id, segment
    confidence and the alternative class of the probabilities; ``instance_to_semantic`` maps the
    new global instance ids to their classes."""

    classes: np.ndarray
    instance: np.ndarray
    segment: np.ndarray
    confidence: np.ndarray
    alternative: np.ndarray
    instance_to_semantic: dict[int, int] = field(default_factory=dict)


def synthesize_frame(
    segments: np.ndarray,
    segment_class: np.ndarray,
    params: NoiseParams,
    rng: np.random.Generator,
    *,
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
    stats = {"segments": 0, "missed": 0, "absorbed": 0, "merged": 0, "split": 0, "confused": 0}
    noise = _Noise(params, rng, set(int(c) for c in thing_classes), segments.shape[1] / REFERENCE_WIDTH, stats)
    state = _Segments(segments.astype(np.int64), [int(c) for c in segment_class])
    if params.warp_px > 0:
        state.seg = _jitter(state.seg, noise)
    absorbed_pixels = _apply_misses(state, noise)
    _merge_things(state, noise)
    _split_things(state, noise)
    final_ids = [int(i) for i in np.unique(state.seg) if i > 0]
    _confuse_classes(state, final_ids, noise)
    members = _merge_stuff(state, final_ids, noise.things)
    tables = _global_ids(state, members, counters, noise)
    seg = state.seg
    confidence = _confidence(seg, absorbed_pixels, tables.confidence, noise)
    semantics = tables.classes[seg]
    return FrameLabels(
        semantics=semantics,
        instance=tables.instance[seg],
        segments=tables.segment[seg],
        confidence=confidence,
        probability=class_probabilities(semantics, tables.alternative[seg], confidence, num_classes),
        instance_to_semantic=tables.instance_to_semantic,
        stats=stats,
    )


def _jitter(seg: np.ndarray, noise: _Noise) -> np.ndarray:
    """Step 1: ``seg`` (H, W) resampled (nearest) through a smooth random displacement field."""
    height, width = seg.shape
    params, scale = noise.params, noise.scale
    field_xy = smooth_field(noise.rng, height, width, params.warp_cell_px * scale, channels=2) * (params.warp_px * scale)
    yy, xx = np.mgrid[0:height, 0:width]
    src_x = np.clip(np.rint(xx + field_xy[0]), 0, width - 1).astype(np.int64)
    src_y = np.clip(np.rint(yy + field_xy[1]), 0, height - 1).astype(np.int64)
    return seg[src_y, src_x]


def _draw_misses(seg: np.ndarray, count: int, noise: _Noise) -> tuple[np.ndarray, dict[int, bool]]:
    """Image share of each of the ``count`` ids (count,) and, for each id present in ``seg`` (H, W)
    but 0, whether the segmenter misses it."""
    height, width = seg.shape
    params = noise.params
    area = np.bincount(seg.ravel(), minlength=count) / float(height * width)
    present = [int(i) for i in np.flatnonzero(area) if i > 0]
    noise.stats["segments"] = len(present)
    on_border = set(np.unique(np.concatenate([seg[0], seg[-1], seg[:, 0], seg[:, -1]])).tolist())
    missed = {}
    for sid in present:
        p = params.miss_base + params.miss_small * np.exp(-area[sid] / params.miss_small_area)
        p += params.miss_border * (sid in on_border) * np.exp(-area[sid] / params.miss_border_area)
        missed[sid] = bool(noise.rng.random() < min(p, 0.95))
    return area, missed


def _absorb_target(sid: int, adjacency: dict[tuple[int, int], int], missed: dict[int, bool]) -> int:
    """The non-missed neighbour of ``sid`` with the longest shared boundary (ties: smaller id), 0 if none."""
    best, target = -1, 0
    for (a, b), count in adjacency.items():
        other = b if a == sid else a if b == sid else -1
        if other > 0 and not missed[other] and (count > best or (count == best and other < target)):
            best, target = count, other
    return target


def _apply_misses(state: _Segments, noise: _Noise) -> np.ndarray:
    """Step 2: missed segments become unlabelled or are absorbed into a neighbour. Returns the
    absorbed pixels (H, W) bool."""
    seg, count = state.seg, len(state.true_class)
    area, missed = _draw_misses(seg, count, noise)
    lut = np.arange(count, dtype=np.int64)
    adjacency = _adjacency(seg)
    was_missed = np.zeros(count, dtype=bool)
    for sid, is_missed in missed.items():
        if not is_missed:
            continue
        noise.stats["missed"] += 1
        was_missed[sid] = True
        absorb = noise.rng.random() < noise.params.absorb_prob and area[sid] < noise.params.absorb_max_area
        target = _absorb_target(sid, adjacency, missed) if absorb else 0
        lut[sid] = target
        noise.stats["absorbed"] += int(target > 0)
    state.seg = lut[seg]
    return was_missed[seg] & (lut[seg] > 0)


def _merge_things(state: _Segments, noise: _Noise) -> None:
    """Step 3: touching THING segments merge (union-find in increasing id order; the merged
    segment takes the id of its largest member). Sets ``state.merged``."""
    seg, true_class, things = state.seg, state.true_class, noise.things
    area = np.bincount(seg.ravel(), minlength=len(true_class)).astype(np.float64)
    parent = list(range(len(true_class)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    min_contact = max(1.0, noise.params.merge_min_contact_px * noise.scale)
    merged = np.zeros(len(true_class), dtype=bool)
    for (a, b), count in sorted(_adjacency(seg).items()):
        if a == 0 or true_class[a] not in things or true_class[b] not in things or count < min_contact:
            continue
        if noise.rng.random() < noise.params.merge_prob:
            ra, rb = find(a), find(b)
            if ra != rb:
                keep, drop = (ra, rb) if (area[ra], -ra) >= (area[rb], -rb) else (rb, ra)
                parent[drop] = keep
                area[keep] += area[drop]
                merged[keep] = True
                noise.stats["merged"] += 1
    roots = np.array([find(i) for i in range(len(true_class))], dtype=np.int64)
    state.seg = roots[seg]
    state.merged = merged


def _cut_side(seg: np.ndarray, sid: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """Rows and columns of the pixels of ``sid`` on one side of a random line through its centroid,
    or None when either side would hold under 15 % of them."""
    angle = rng.uniform(0.0, np.pi)
    shift = rng.uniform(-0.25, 0.25)
    ys, xs = np.nonzero(seg == sid)
    proj = (xs - xs.mean()) * np.cos(angle) + (ys - ys.mean()) * np.sin(angle)
    side = proj > shift * proj.std()
    if not 0.15 < side.mean() < 0.85:
        return None
    return ys[side], xs[side]


def _split_things(state: _Segments, noise: _Noise) -> None:
    """Step 4: large THING segments are cut in two along a random line; the cut-off side gets a
    new id (appended to ``true_class`` and ``merged``)."""
    seg = state.seg
    height, width = seg.shape
    next_id = len(state.true_class)
    extra_class: list[int] = []
    extra_merged: list[bool] = []
    for sid in [int(i) for i in np.unique(seg) if i > 0]:
        if state.true_class[sid] not in noise.things or np.count_nonzero(seg == sid) < noise.params.split_min_area * height * width:
            continue
        if noise.rng.random() >= noise.params.split_prob:
            continue
        side = _cut_side(seg, sid, noise.rng)
        if side is None:
            continue
        seg[side] = next_id
        extra_class.append(state.true_class[sid])
        extra_merged.append(bool(state.merged[sid]))
        state.split.update({sid, next_id})
        next_id += 1
        noise.stats["split"] += 1
    state.true_class = state.true_class + extra_class
    state.merged = np.concatenate([state.merged, np.array(extra_merged, dtype=bool)])


def _confuse_classes(state: _Segments, final_ids: list[int], noise: _Noise) -> None:
    """Step 5: the class each of ``final_ids`` is emitted with (void: otherprop), some replaced by a
    plausible confusion. Sets ``state.emitted`` and ``state.confused``."""
    for sid in final_ids:
        cls = state.true_class[sid]
        if cls == VOID_CLASS:
            state.emitted[sid] = OTHERPROP_CLASS
            continue
        options = CONFUSIONS.get(cls, ())
        p = noise.params.confuse_thing if cls in noise.things else noise.params.confuse_stuff
        if options and noise.rng.random() < p:
            state.emitted[sid] = int(options[int(noise.rng.integers(len(options)))])
            state.confused.add(sid)
            noise.stats["confused"] += 1
        else:
            state.emitted[sid] = cls


def _merge_stuff(state: _Segments, final_ids: list[int], things: set[int]) -> dict[int, list[int]]:
    """Step 5, end: the segments of one emitted STUFF class become one (the id of the first).
    Relabels ``state.seg``; returns each remaining id with the ids merged into it."""
    stuff_owner: dict[int, int] = {}
    relabel = np.arange(len(state.true_class), dtype=np.int64)
    for sid in final_ids:
        if state.emitted[sid] not in things:
            relabel[sid] = stuff_owner.setdefault(state.emitted[sid], sid)
    state.seg = relabel[state.seg]
    members: dict[int, list[int]] = {}
    for sid in final_ids:
        members.setdefault(int(relabel[sid]), []).append(sid)
    return members


def _segment_confidence(state: _Segments, group: list[int], params: NoiseParams) -> float:
    """Step 7: confidence of the segment made of the ids ``group`` away from its boundary."""
    c = params.conf_interior
    if any(s in state.confused for s in group):
        c *= params.conf_confused
    if any(state.merged[s] for s in group):
        c *= params.conf_merged
    if any(s in state.split for s in group):
        c *= params.conf_split
    if any(state.true_class[s] == VOID_CLASS for s in group):
        c *= params.conf_void
    return c


def _global_ids(state: _Segments, members: dict[int, list[int]], counters: IdCounters, noise: _Noise) -> _IdTables:
    """Step 6: global segment (and THING instance) ids of the frame's segments in id order, with
    their classes, confidences and alternative classes."""
    size = len(state.true_class)
    tables = _IdTables(
        classes=np.zeros(size, dtype=np.int64),
        instance=np.zeros(size, dtype=np.int64),
        segment=np.zeros(size, dtype=np.int64),
        confidence=np.full(size, noise.params.conf_unlabelled),
        alternative=np.zeros(size, dtype=np.int64),
    )
    for owner in sorted(members):
        cls = state.emitted[owner]
        tables.classes[owner] = cls
        tables.segment[owner] = counters.next_segment
        counters.next_segment += 1
        if cls in noise.things:
            tables.instance[owner] = counters.next_instance
            tables.instance_to_semantic[counters.next_instance] = cls
            counters.next_instance += 1
        tables.confidence[owner] = _segment_confidence(state, members[owner], noise.params)
        if owner in state.confused or state.true_class[owner] == VOID_CLASS:
            tables.alternative[owner] = state.true_class[owner]
        else:
            options = CONFUSIONS.get(cls, ())
            tables.alternative[owner] = options[0] if options else cls
    return tables


def _confidence(seg: np.ndarray, absorbed: np.ndarray, segment_confidence: np.ndarray, noise: _Noise) -> np.ndarray:
    """Step 7: per-pixel confidence (H, W) float32 from the segment confidences (N,), lower near
    boundaries and on ``absorbed`` pixels (H, W), plus smooth noise."""
    params, scale = noise.params, noise.scale
    height, width = seg.shape
    distance = ndimage.distance_transform_edt(~_boundary(seg))
    width_px = max(params.conf_boundary_width_px * scale, 0.5)
    seg_conf = segment_confidence[seg]
    confidence = params.conf_boundary + (seg_conf - params.conf_boundary) * (1.0 - np.exp(-distance / width_px))
    confidence = np.where(seg == 0, params.conf_unlabelled, confidence)
    confidence = np.where(absorbed & (seg > 0), confidence * params.conf_absorbed, confidence)
    if params.conf_noise > 0:
        confidence = confidence + params.conf_noise * smooth_field(noise.rng, height, width, 24.0 * scale, channels=1)[0]
    return np.clip(confidence, 0.0, 1.0).astype(np.float32)



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
