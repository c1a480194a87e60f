"""Class-agnostic machine labels in the manner of Segment Anything's automatic mask generator.

SAM answers a grid of point prompts with masks at three granularities (a sub-part, a part, the
whole object), keeps those whose predicted quality (IoU) and stability are high, removes
duplicates and, painted into one label map, lets smaller masks lie on top of larger ones. It knows
no classes, so walls and floors come out as masks of their own, pieced by occluders and lighting.
This model imitates that output from the exact object map of a frame (all sizes in pixels are given
for a 320-pixel-wide image and scale with the width; areas are fractions of the image; parameters
per noise level are the fields of :class:`SamParams`, see :data:`SAM_LEVELS`):

1. **Atoms.** Every object pixel is assigned to a cell of its object: the object's frame (the one its
   textures use) is cut by up to three planes through the centre of its bounding box, one across
   each local axis whose extent is at least ``part_axis_ratio`` of the longest (the longest axis
   first). Cells are fixed in 3D, so a part is roughly the same part in every view. Wall, floor and
   ceiling pixels (the *background*) are grouped by object and world normal (6 axis directions) and
   split into 4-connected pieces; a piece over ``wall_split_area`` is cut in two along a random line
   through its centroid with probability ``wall_split_prob`` (SAM splits big planes at shading
   changes). An atom is one (object, cell) or one piece.
2. **Granularity.** For every visible object (frame by frame, drawn anew) a level: *whole* with
   probability ``whole_prob``, *halves* (the cells across the longest axis) with ``halves_prob``,
   else *small parts* (every cell); objects under ``part_min_area`` stay whole. A level brings the
   masks of the coarser levels too (SAM's three outputs per prompt). Touching objects (sharing at least
   ``merge_min_contact_px`` pixel pairs) are, pair by pair with probability ``merge_prob``, given one
   mask of both instead of their own (under-segmentation).
3. **Predicted quality.** ``q = base - quality_small * exp(-area / small_area) + quality_std * N(0, 1)``
   with ``base`` = ``quality_whole`` (whole and merged masks), ``quality_part`` (parts) or
   ``quality_background`` (pieces); a mask is kept when ``q >= quality_threshold`` and its area is at
   least ``min_area``. A background piece is missed with probability ``background_miss_prob``.
4. **Duplicates.** In decreasing quality, a mask whose IoU with a kept one exceeds ``duplicate_iou``
   is dropped (SAM's non-maximum suppression).
5. **Painting.** Masks are painted largest first; a pixel takes the last mask covering it, so a part
   lies on top of its whole, and where a part was dropped the whole shows through. Pixels no mask
   covers are unlabelled. A background piece smaller than ``background_object_area`` is taken for
   an object with probability ``background_object_prob``; the others stay background.
6. **Boundaries.** The painted map is resampled (nearest) through a smooth random displacement field
   (``warp_px``, correlation length ``warp_cell_px``, as in :mod:`.machine_labels`), then pixels on a
   boundary between two labels become unlabelled where a smooth unit field exceeds the level that
   leaves ``gap_share`` of the boundary pixels (gaps along stretches of boundary).
7. **Output.** Object masks get global instance ids and every mask a global segment id (running
   counters shared by all frames, never reused); semantics follow the class-agnostic contract
   (2 = object, 1 = background mask, 0 = unlabelled); the confidence of a pixel is the predicted
   quality of its mask (0 where unlabelled); there are no class probabilities.

Parameters per level::

    parameter                low     medium  high
    whole_prob               0.55    0.45    0.35
    halves_prob              0.3     0.35    0.35
    part_min_area            0.006   0.005   0.004
    part_axis_ratio          0.35    0.35    0.35
    merge_prob               0.02    0.05    0.1
    merge_min_contact_px     4       4       4
    wall_split_prob          0.2     0.35    0.5
    wall_split_area          0.1     0.08    0.06
    quality_whole            0.96    0.95    0.94
    quality_part             0.93    0.92    0.905
    quality_background       0.94    0.93    0.92
    quality_std              0.025   0.03    0.035
    quality_small            0.04    0.06    0.08
    small_area               0.004   0.004   0.004
    quality_threshold        0.86    0.86    0.86
    duplicate_iou            0.7     0.7     0.7
    min_area                 0.002   0.002   0.002
    background_miss_prob     0.05    0.1     0.15
    background_object_prob   0.1     0.2     0.3
    background_object_area   0.03    0.03    0.03
    warp_px                  0.6     1.0     1.6
    warp_cell_px             40      32      26
    gap_share                0.15    0.25    0.35

Everything is drawn from the ``numpy.random.Generator`` passed in, so labels are deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.special import ndtri

from ..classes import AGNOSTIC_BACKGROUND, AGNOSTIC_OBJECT
from .machine_labels import REFERENCE_WIDTH, FrameLabels, IdCounters, _adjacency, _boundary, _cut_side, smooth_field
from .room import CEILING, FLOOR, WALL, Room

BACKGROUND_CLASSES = (WALL, FLOOR, CEILING)
_CELL_BITS = 3  # cells of an object: up to 2^3 (one bit per cutting plane)
_PIECE_BASE = 1 << _CELL_BITS  # background pieces are numbered from here within their object


@dataclass(frozen=True)
class SamParams:
    """Parameters of the SAM-like mask model (see the module docstring for their meaning)."""

    whole_prob: float
    halves_prob: float
    part_min_area: float
    part_axis_ratio: float
    merge_prob: float
    merge_min_contact_px: float
    wall_split_prob: float
    wall_split_area: float
    quality_whole: float
    quality_part: float
    quality_background: float
    quality_std: float
    quality_small: float
    small_area: float
    quality_threshold: float
    duplicate_iou: float
    min_area: float
    background_miss_prob: float
    background_object_prob: float
    background_object_area: float
    warp_px: float
    warp_cell_px: float
    gap_share: float


_SHARED = dict(part_axis_ratio=0.35, merge_min_contact_px=4.0, small_area=0.004, quality_threshold=0.86, duplicate_iou=0.7,
               min_area=0.002, background_object_area=0.03)
SAM_LEVELS: dict[str, SamParams] = {
    "low": SamParams(
        whole_prob=0.55, halves_prob=0.3, part_min_area=0.006, merge_prob=0.02, wall_split_prob=0.2, wall_split_area=0.1,
        quality_whole=0.96, quality_part=0.93, quality_background=0.94, quality_std=0.025, quality_small=0.04,
        background_miss_prob=0.05, background_object_prob=0.1, warp_px=0.6, warp_cell_px=40.0, gap_share=0.15, **_SHARED,
    ),
    "medium": SamParams(
        whole_prob=0.45, halves_prob=0.35, part_min_area=0.005, merge_prob=0.05, wall_split_prob=0.35, wall_split_area=0.08,
        quality_whole=0.95, quality_part=0.92, quality_background=0.93, quality_std=0.03, quality_small=0.06,
        background_miss_prob=0.1, background_object_prob=0.2, warp_px=1.0, warp_cell_px=32.0, gap_share=0.25, **_SHARED,
    ),
    "high": SamParams(
        whole_prob=0.35, halves_prob=0.35, part_min_area=0.004, merge_prob=0.1, wall_split_prob=0.5, wall_split_area=0.06,
        quality_whole=0.94, quality_part=0.905, quality_background=0.92, quality_std=0.035, quality_small=0.08,
        background_miss_prob=0.15, background_object_prob=0.3, warp_px=1.6, warp_cell_px=26.0, gap_share=0.35, **_SHARED,
    ),
}


@dataclass(frozen=True)
class ObjectFrames:
    """What the model needs of every object of a room (N objects): ``background`` (N,) bool (wall,
    floor, ceiling), the object frame ``origin`` (N, 3) and ``rotation`` (N, 3, 3) (local = R^T (p - o)),
    the ``centre`` (N, 3) of its bounding box in that frame, and ``axes`` (N, 3) the local axes in
    decreasing extent with ``cuts`` (N, 3) bool saying which of them cut the object into cells."""

    background: np.ndarray
    origin: np.ndarray
    rotation: np.ndarray
    centre: np.ndarray
    axes: np.ndarray
    cuts: np.ndarray


def object_frames(room: Room, part_axis_ratio: float) -> ObjectFrames:
    """:class:`ObjectFrames` of ``room``; objects without primitives (the shell) get no cuts."""
    n = len(room.objects)
    centre, axes, cuts = np.zeros((n, 3)), np.tile(np.arange(3), (n, 1)), np.zeros((n, 3), dtype=bool)
    for i, obj in enumerate(room.objects):
        if not obj.parts:
            continue
        local = (np.concatenate([p.shape.corners() for p in obj.parts]) - obj.frame_origin) @ obj.frame_rotation
        low, high = local.min(axis=0), local.max(axis=0)
        extent = high - low
        centre[i] = (low + high) / 2.0
        axes[i] = np.argsort(-extent, kind="stable")
        cuts[i] = extent[axes[i]] >= part_axis_ratio * extent.max()
    return ObjectFrames(
        background=np.array([o.class_id in BACKGROUND_CLASSES for o in room.objects]),
        origin=np.stack([o.frame_origin for o in room.objects]),
        rotation=np.stack([o.frame_rotation for o in room.objects]),
        centre=centre,
        axes=axes,
        cuts=cuts,
    )


def world_points(depth: np.ndarray, k: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """World points (H, W, 3) of a z-depth map (H, W) with intrinsics (3, 3) and camera-to-world pose (4, 4)."""
    height, width = depth.shape
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    cam = np.stack([(u - k[0, 2]) / k[0, 0] * depth, (v - k[1, 2]) / k[1, 1] * depth, depth], axis=-1)
    return cam @ pose[:3, :3].T + pose[:3, 3]


@dataclass
class _Frame:
    """One frame as the model sees it: ``atoms`` (H, W) int64 atom ids (0..A-1), per atom its
    object ``atom_object`` (A,), ``atom_cell`` (A,) and pixel count ``atom_area`` (A,), the image
    share of every object ``object_area`` (N,), the frame's generator and parameters, the pixel scale
    (width / 320) and the counts of what the model did."""

    atoms: np.ndarray
    atom_object: np.ndarray
    atom_cell: np.ndarray
    atom_area: np.ndarray
    object_area: np.ndarray
    rng: np.random.Generator
    params: SamParams
    scale: float
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class _Mask:
    """A candidate mask: its atoms (bool over all atoms), predicted quality, whether it is a
    background piece and how it came about (``whole``, ``merged``, ``part`` or ``background``)."""

    atoms: np.ndarray
    quality: float
    background: bool
    kind: str
    area: int = 0


def _object_cells(objects: np.ndarray, points: np.ndarray, frames: ObjectFrames) -> np.ndarray:
    """The cell (0..7) of every pixel (H, W) within its object: bit r is set when the pixel lies on
    the positive side of the object's r-th cutting plane."""
    rel = np.einsum("hwi,hwij->hwj", points - frames.origin[objects], frames.rotation[objects]) - frames.centre[objects]
    cell = np.zeros(objects.shape, dtype=np.int64)
    for rank in range(3):
        along = np.take_along_axis(rel, frames.axes[objects][..., rank : rank + 1], axis=-1)[..., 0]
        cell |= ((along > 0) & frames.cuts[objects][..., rank]).astype(np.int64) << rank
    return cell


def _background_pieces(objects: np.ndarray, normals: np.ndarray, frames: ObjectFrames, *, params: SamParams,
                       rng: np.random.Generator) -> np.ndarray:
    """Piece numbers (H, W) of background pixels within their object (from ``_PIECE_BASE``; 0 on
    objects): 4-connected pieces of one object and world normal direction, large ones cut in two."""
    dominant = np.argmax(np.abs(normals), axis=-1)
    direction = dominant * 2 + (np.take_along_axis(normals, dominant[..., None], axis=-1)[..., 0] > 0)
    pieces = np.zeros(objects.shape, dtype=np.int64)
    total = objects.size
    for obj in np.unique(objects[frames.background[objects]]):
        next_piece = _PIECE_BASE
        for side in np.unique(direction[objects == obj]):
            labelled, count = ndimage.label((objects == obj) & (direction == side))
            for piece in range(1, count + 1):
                inside = labelled == piece
                pieces[inside] = next_piece
                next_piece += 1
                if inside.sum() > params.wall_split_area * total and rng.random() < params.wall_split_prob:
                    side_pixels = _cut_side(np.where(inside, 1, 0), 1, rng)
                    if side_pixels is not None:
                        pieces[side_pixels] = next_piece
                        next_piece += 1
    return pieces


def _atoms(objects: np.ndarray, points: np.ndarray, normals: np.ndarray, frames: ObjectFrames, *, params: SamParams,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Atom ids (H, W) numbered 0..A-1 in (object, cell) order, with each atom's object, cell and area (A,)."""
    cell = np.where(frames.background[objects], _background_pieces(objects, normals, frames, params=params, rng=rng), _object_cells(objects, points, frames))
    keys, atoms, area = np.unique(objects.astype(np.int64) * (1 << 32) + cell, return_inverse=True, return_counts=True)
    return atoms.reshape(objects.shape), keys >> 32, keys & ((1 << 32) - 1), area


def _quality(base: float, area: float, frame: _Frame) -> float:
    """Predicted quality of a mask covering ``area`` of the image (step 3)."""
    p = frame.params
    return float(base - p.quality_small * np.exp(-area / p.small_area) + p.quality_std * frame.rng.standard_normal())


def _mask(frame: _Frame, atoms: np.ndarray, base: float, kind: str) -> _Mask:
    """A candidate mask over the atoms selected by ``atoms`` (bool (A,)) with a drawn quality."""
    area = int(frame.atom_area[atoms].sum())
    return _Mask(atoms, _quality(base, area / frame.atoms.size, frame), kind == "background", kind, area)


def _merged_pairs(frame: _Frame, objects: np.ndarray, background: np.ndarray) -> dict[int, int]:
    """Object -> partner for the touching object pairs that get one mask of both (step 2)."""
    p = frame.params
    min_contact = max(1.0, p.merge_min_contact_px * frame.scale)
    partner: dict[int, int] = {}
    for (a, b), count in sorted(_adjacency(objects).items()):
        if background[a] or background[b] or count < min_contact or a in partner or b in partner:
            continue
        if frame.rng.random() < p.merge_prob:
            partner[a], partner[b] = b, a
            frame.stats["merged"] += 1
    return partner


def _object_masks(frame: _Frame, obj: int, frames: ObjectFrames) -> list[_Mask]:
    """The masks of one object at the granularity drawn for it in this frame (step 2)."""
    p = frame.params
    own = frame.atom_object == obj
    masks = [_mask(frame, own, p.quality_whole, "whole")]
    u = frame.rng.random()
    if frame.object_area[obj] < p.part_min_area or u < p.whole_prob:
        return masks
    frame.stats["split_objects"] += 1
    halves = frame.atom_cell & 1
    masks += [_mask(frame, own & (halves == h), p.quality_part, "part") for h in (0, 1) if np.any(own & (halves == h))]
    if u >= p.whole_prob + p.halves_prob:
        cells = np.unique(frame.atom_cell[own])
        masks += [_mask(frame, own & (frame.atom_cell == c), p.quality_part, "part") for c in cells] if len(cells) > 2 else []
    return masks


def _candidates(frame: _Frame, objects: np.ndarray, frames: ObjectFrames) -> list[_Mask]:
    """Every candidate mask of the frame: objects (whole, merged or in parts) and background pieces."""
    p = frame.params
    present = [int(o) for o in np.unique(frame.atom_object)]
    partner = _merged_pairs(frame, objects, frames.background)
    masks: list[_Mask] = []
    for obj in present:
        if frames.background[obj]:
            for atom in np.flatnonzero(frame.atom_object == obj):
                if frame.rng.random() < p.background_miss_prob:
                    frame.stats["background_missed"] += 1
                    continue
                masks.append(_mask(frame, np.arange(len(frame.atom_area)) == atom, p.quality_background, "background"))
        elif obj in partner:
            if obj < partner[obj]:
                both = (frame.atom_object == obj) | (frame.atom_object == partner[obj])
                masks.append(_mask(frame, both, p.quality_whole, "merged"))
        else:
            masks += _object_masks(frame, obj, frames)
    return masks


def _select(masks: list[_Mask], frame: _Frame) -> list[_Mask]:
    """The masks SAM keeps (steps 3-4): quality and area thresholds, then greedy duplicate removal."""
    p = frame.params
    min_pixels = p.min_area * frame.atoms.size
    kept: list[_Mask] = []
    for mask in sorted(masks, key=lambda m: -m.quality):
        if mask.quality < p.quality_threshold or mask.area < min_pixels:
            frame.stats["dropped"] += 1
            continue
        duplicate = any(frame.atom_area[mask.atoms & k.atoms].sum() > p.duplicate_iou * frame.atom_area[mask.atoms | k.atoms].sum() for k in kept)
        if duplicate:
            frame.stats["duplicates"] += 1
            continue
        kept.append(mask)
    return kept


def _paint(kept: list[_Mask], frame: _Frame) -> tuple[np.ndarray, list[_Mask]]:
    """Mask numbers (H, W) (1..M, 0 = no mask), masks painted largest first so smaller ones lie on
    top (step 5), and the masks by number - 1; small background pieces may turn into objects."""
    p = frame.params
    order = sorted(kept, key=lambda m: -m.area)  # stable: equal areas keep the quality order
    winner = np.zeros(len(frame.atom_area), dtype=np.int64)
    for number, mask in enumerate(order, start=1):
        winner[mask.atoms] = number
        if mask.background and mask.area < p.background_object_area * frame.atoms.size and frame.rng.random() < p.background_object_prob:
            mask.background = False
            frame.stats["background_as_object"] += 1
    return winner[frame.atoms], order


def _boundary_noise(painted: np.ndarray, frame: _Frame) -> np.ndarray:
    """Step 6: the painted map (H, W) resampled through a smooth displacement field, with gaps
    (0) along stretches of the boundaries between labels."""
    p, scale = frame.params, frame.scale
    height, width = painted.shape
    if p.warp_px > 0:
        shift = smooth_field(frame.rng, height, width, p.warp_cell_px * scale, channels=2) * (p.warp_px * scale)
        yy, xx = np.mgrid[0:height, 0:width]
        painted = painted[np.clip(np.rint(yy + shift[1]), 0, height - 1).astype(np.int64), np.clip(np.rint(xx + shift[0]), 0, width - 1).astype(np.int64)]
    if p.gap_share > 0:
        gate = smooth_field(frame.rng, height, width, 12.0 * scale, channels=1)[0] > ndtri(1.0 - p.gap_share)
        painted = np.where(_boundary(painted) & gate, 0, painted)
    return painted


def _frame_labels(painted: np.ndarray, order: list[_Mask], counters: IdCounters, stats: dict[str, int]) -> FrameLabels:
    """Step 7: global ids, semantics and confidence of the masks left in ``painted`` (H, W)."""
    count = len(order) + 1
    instance, segment = np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.int64)
    semantics, quality = np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.float32)
    for number in [int(n) for n in np.unique(painted) if n > 0]:
        mask = order[number - 1]
        segment[number] = counters.next_segment
        counters.next_segment += 1
        semantics[number] = AGNOSTIC_BACKGROUND if mask.background else AGNOSTIC_OBJECT
        quality[number] = mask.quality
        if not mask.background:
            instance[number] = counters.next_instance
            counters.next_instance += 1
        stats["masks"] += 1
        stats[f"{mask.kind}_masks"] += 1
    return FrameLabels(
        semantics=semantics[painted], instance=instance[painted], segments=segment[painted],
        confidence=quality[painted], probability=None, instance_to_semantic={}, stats=stats,
    )


def sam_frame(objects: np.ndarray, points: np.ndarray, normals: np.ndarray, frames: ObjectFrames, *,
              params: SamParams, rng: np.random.Generator, counters: IdCounters) -> FrameLabels:
    """SAM-like machine labels of one frame.

    Args:
        objects: object index of every pixel (H, W).
        points: world point of every pixel (H, W, 3).
        normals: world normal of every pixel (H, W, 3).
        frames: :func:`object_frames` of the room.
        params: the model's parameters.
        rng: this frame's generator.
        counters: global id counters, advanced in place.
    """
    stats = dict.fromkeys(("masks", "whole_masks", "merged_masks", "part_masks", "background_masks", "split_objects", "merged",
                           "dropped", "duplicates", "background_missed", "background_as_object"), 0)
    atoms, atom_object, atom_cell, atom_area = _atoms(objects, points, normals, frames, params=params, rng=rng)
    object_area = np.bincount(objects.ravel(), minlength=len(frames.background)) / objects.size
    frame = _Frame(atoms, atom_object, atom_cell, atom_area, object_area, rng, params, objects.shape[1] / REFERENCE_WIDTH, stats)
    painted, order = _paint(_select(_candidates(frame, objects, frames), frame), frame)
    return _frame_labels(_boundary_noise(painted, frame), order, counters, stats)
