"""Places: which thing segments of all training frames sit in one place in 3D.

Each frame's thing segment (a per-frame segment label of one class) is lifted with the measured
depth of its interior pixels to a box in the normalised world frame. Segments of one class whose
boxes touch or overlap (closer than ``gap``) are linked, and the connected groups over all frames
are the places: one object seen from many views chains into one place, because the views between
two partial ones overlap both; two objects of one class that no view links stay two places. Places
that only one frame sees are dropped (-1): a stray segment is no evidence of a second object.

The separation term (:func:`clusteringsdf.losses.clustering.separation_loss`) pushes different
places of one class to different object channels.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from ..data.scene import Scene
from .frames import per_frame_channels, train_frames
from .rays import pixel_rays

ERODE_PX = 3  # a mask's border pixels are left out: a mask that bleeds onto the wall behind would stretch its box
QUANTILE = 0.05  # box = 5th..95th percentile of the interior points per axis (depth noise)
MIN_POINTS = 20  # segments with fewer interior points with depth get no place


def segment_boxes(
    depth: torch.Tensor, segment: torch.Tensor, semantic: torch.Tensor, pose: torch.Tensor, *, intrinsics: torch.Tensor, scale: float
) -> tuple[list[int], list[int], torch.Tensor]:
    """Boxes of one frame's segments: (segment ids, classes, boxes (N, 2, 3) low/high, normalised).

    depth (H, W) metres (0 = missing); segment (H, W) thing segment labels (<= 0: none); semantic
    (H, W) class ids; pose (4, 4) normalised camera-to-world; intrinsics (3, 3).
    """
    labels = segment.float()[None, None]
    k = 2 * ERODE_PX + 1
    inside = (torch.nn.functional.max_pool2d(labels, k, 1, ERODE_PX) == labels) & (-torch.nn.functional.max_pool2d(-labels, k, 1, ERODE_PX) == labels)
    inside = inside[0, 0] & (segment > 0) & (depth > 0)
    v, u = torch.nonzero(inside, as_tuple=True)
    ids, classes, boxes = [], [], []
    if v.numel() == 0:
        return ids, classes, depth.new_zeros((0, 2, 3))
    origins, directions, dz = pixel_rays(pose, intrinsics, v, u)
    points = origins + directions * (depth[v, u] * scale / dz).unsqueeze(-1)
    owner = segment[v, u]
    for s in torch.unique(owner).tolist():
        mine = points[owner == s]
        if mine.shape[0] < MIN_POINTS:
            continue
        ids.append(int(s))
        classes.append(int(torch.mode(semantic[segment == s]).values))
        boxes.append(torch.quantile(mine, torch.tensor([QUANTILE, 1.0 - QUANTILE], dtype=mine.dtype, device=mine.device), dim=0))
    return ids, classes, torch.stack(boxes) if boxes else depth.new_zeros((0, 2, 3))


def box_gaps(boxes: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """(N, N) distance between axis-aligned boxes (N, 2, 3) (0 where they touch or overlap)."""
    rows = []
    for start in range(0, boxes.shape[0], chunk):
        part = boxes[start : start + chunk]
        between = torch.maximum(part[:, None, 0] - boxes[None, :, 1], boxes[None, :, 0] - part[:, None, 1]).clamp_min(0.0)
        rows.append(between.norm(dim=-1))
    return torch.cat(rows) if rows else boxes.new_zeros((0, 0))


def segment_places(scene: Scene, segment: np.ndarray, instance: np.ndarray, semantic: np.ndarray, *, gap: float) -> np.ndarray:
    """The place of every (frame, segment label): (F, S) int64, -1 for none.

    scene: cameras (normalised), depth (metres) and the train split; segment (F, H, W) the
    per-frame segment labels rays carry (-1 ignored); instance (F, H, W) (0: stuff, no place);
    semantic (F, H, W); gap in normalised units. Found on the CPU, once per run.
    """
    depth, poses, intrinsics = (torch.from_numpy(np.ascontiguousarray(a)) for a in (scene.depths, scene.poses, scene.intrinsics))
    segment, instance, semantic = (torch.from_numpy(np.ascontiguousarray(a)) for a in (segment, instance, semantic))
    table = torch.full((depth.shape[0], max(int(segment.max()), 0) + 1), -1, dtype=torch.int64)
    found = []  # (frame, segment, class, box)
    for f in train_frames(scene).tolist():
        things = torch.where(instance[f] > 0, segment[f].long(), torch.zeros_like(segment[f], dtype=torch.long))
        ids, classes, boxes = segment_boxes(depth[f].float(), things, semantic[f], poses[f].float(), intrinsics=intrinsics[f].float(), scale=scene.normalization.scale)
        found += [(f, s, c, b) for s, c, b in zip(ids, classes, boxes)]
    next_place = 0
    for cls in sorted({c for _, _, c, _ in found}):
        members = [m for m in found if m[2] == cls]
        linked = (box_gaps(torch.stack([m[3] for m in members])) <= gap).numpy()
        count, component = connected_components(csr_matrix(linked), directed=False)
        for label in range(count):
            group = [members[i] for i in np.flatnonzero(component == label)]
            if len({f for f, _, _, _ in group}) < 2:
                continue  # one frame's word only
            for f, s, _, _ in group:
                table[f, s] = next_place
            next_place += 1
    return table.numpy()


def place_map(scene: Scene, segment: np.ndarray, instance: np.ndarray, semantic: np.ndarray, *, gap: float) -> np.ndarray:
    """(F, H, W) the place of each pixel's segment (:func:`segment_places`), -1 for none; int16
    while the places fit, else int32."""
    table = segment_places(scene, segment, instance, semantic, gap=gap)
    dtype = np.int16 if table.max(initial=-1) < 2**15 else np.int32
    out = np.full(segment.shape, -1, dtype=dtype)
    for f in range(segment.shape[0]):
        labelled = segment[f] >= 0
        out[f][labelled] = table[f, segment[f][labelled]]
    return out


def count_places(scene: Scene, instance: np.ndarray, semantic: np.ndarray, *, gap: float) -> int:
    """How many places (:func:`segment_places`) the thing segments of instance (F, H, W) ids (0:
    stuff) and semantic (F, H, W) class maps make: about the scene's objects, however many parts
    each frame's masks cut them into. Needs the scene's depth."""
    most = max((len(np.unique(frame[frame > 0])) for frame in instance), default=0)
    slots = per_frame_channels(instance, most + 1, np.random.default_rng(0))  # every segment a slot of its frame
    return int(segment_places(scene, slots, instance, semantic, gap=gap).max(initial=-1)) + 1
