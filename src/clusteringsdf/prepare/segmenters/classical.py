"""The built-in segmenter: geometric and colour over-segmentation, no weights, no classes.

With depth (the intended use: walls, floors and ceilings must not become "objects"):

1. **Background planes.** Planes are found one after another by RANSAC on the back-projected depth
   (a pixel belongs to a plane within ``plane_tolerance`` of the depth and with its normal within
   25 degrees); a connected piece of a plane whose 3D extent (5th-95th percentile box diagonal)
   exceeds ``max_extent`` metres is background: the room's walls, floor and ceiling span metres,
   the faces of furniture rarely more than two.
2. **Objects.** The remaining pixels with depth are split at depth discontinuities (neighbours
   whose depths differ by more than ``depth_jump`` of the depth); each connected piece larger than
   ``min_share`` of the frame is one instance. Pieces larger than ``max_share`` of the frame are
   background too; pixels without depth get no instance.

Without depth: :func:`skimage.segmentation.felzenszwalb` on CIELAB colour; segments over
``max_share`` of the frame or touching three or more image sides are background.

The rule was chosen on the synthetic room with ``benchmarks/classical_segmenter.py``, which scores
the masks per frame against the thing instances (class-agnostic 2D PQ) and counts the stuff pixels
turned into objects (figures in docs/results.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import FrameMasks, Segmenter

__all__ = ["ClassicalOptions", "ClassicalSegmenter"]


@dataclass(frozen=True)
class ClassicalOptions:
    """Settings of the classical segmenter (shares are of the frame's pixels).

    Attributes:
        min_share: pieces smaller than this share get no instance.
        max_share: pieces larger than this share are background.
        max_extent: plane pieces spanning more metres than this are background.
        plane_tolerance: distance to a plane, as a share of the depth, of its pixels.
        depth_jump: relative depth difference between neighbours that separates pieces.
        max_planes: planes searched per frame.
        colour_scale: felzenszwalb's scale at 320x240 (without depth), scaled with the image area.
        colour_min_share: ``min_share`` without depth (colour segments are noisier).
        seed: RANSAC seed.
    """

    min_share: float = 0.002
    max_share: float = 0.35
    max_extent: float = 1.5
    plane_tolerance: float = 0.01
    depth_jump: float = 0.04
    max_planes: int = 8
    colour_scale: float = 3000.0
    colour_min_share: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_share < self.max_share <= 1.0 or self.max_extent <= 0:
            raise ValueError("need 0 <= min_share < max_share <= 1 and max_extent > 0")
        if self.plane_tolerance <= 0 or self.depth_jump <= 0 or self.max_planes < 0 or self.colour_scale <= 0:
            raise ValueError("plane_tolerance, depth_jump and colour_scale must be positive, max_planes non-negative")
        if not 0.0 <= self.colour_min_share < self.max_share:
            raise ValueError("need 0 <= colour_min_share < max_share")


def _points(depth: np.ndarray, k: np.ndarray) -> np.ndarray:
    height, width = depth.shape
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([(u - k[0, 2]) / k[0, 0] * depth, (v - k[1, 2]) / k[1, 1] * depth, depth], axis=-1)


def _normals(points: np.ndarray) -> np.ndarray:
    """Camera-frame unit normals (H, W, 3) from the cross product of the point-map gradients."""
    normal = np.cross(np.gradient(points, axis=1), np.gradient(points, axis=0))
    norm = np.linalg.norm(normal, axis=-1, keepdims=True)
    return np.where(norm > 1e-12, normal / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def _extent(points: np.ndarray) -> float:
    """Robust diagonal (5th-95th percentile box) of points (N, 3)."""
    if len(points) < 3:
        return 0.0
    low, high = np.percentile(points, [5, 95], axis=0)
    return float(np.linalg.norm(high - low))


class ClassicalSegmenter(Segmenter):
    """Plane removal + depth-continuous pieces (with depth), colour segments otherwise; class-agnostic."""

    name = "classical"

    def __init__(self, options: ClassicalOptions = ClassicalOptions()) -> None:
        self.options = options

    def segment(self, rgb: np.ndarray, depth: np.ndarray | None, k: np.ndarray | None) -> FrameMasks:
        if depth is not None and k is not None and np.count_nonzero(depth > 0) > 0.2 * depth.size:
            return FrameMasks(instance=self._with_depth(depth, k))
        return FrameMasks(instance=self._colour_only(rgb))

    def _background_planes(self, points: np.ndarray, normals: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """bool (H, W): pixels on plane pieces wider than ``max_extent``."""
        from scipy import ndimage

        o = self.options
        rng = np.random.default_rng(o.seed)
        background = np.zeros(valid.shape, dtype=bool)
        free = valid.copy()
        depth = points[..., 2]
        for _ in range(o.max_planes):
            candidates = np.flatnonzero(free)
            if len(candidates) < 0.02 * free.size:
                break
            sample = points.reshape(-1, 3)[rng.choice(candidates, size=min(3000, len(candidates)), replace=False)]
            triples = sample[rng.integers(0, len(sample), size=(200, 3))]
            plane_normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
            lengths = np.linalg.norm(plane_normals, axis=1)
            good = lengths > 1e-9
            plane_normals = plane_normals[good] / lengths[good, None]
            offsets = -np.einsum("ij,ij->i", plane_normals, triples[good, 0])
            distances = np.abs(sample @ plane_normals.T + offsets)
            inliers = (distances < o.plane_tolerance * sample[:, 2:3]).sum(axis=0)
            best = int(np.argmax(inliers))
            normal, offset = plane_normals[best], offsets[best]
            on_plane = free & (np.abs(points @ normal + offset) < o.plane_tolerance * depth) & (np.abs(normals @ normal) > 0.9)
            if on_plane.sum() < 0.01 * free.size:
                break
            pieces, count = ndimage.label(on_plane)
            for piece in range(1, count + 1):
                mask = pieces == piece
                if _extent(points[mask]) > o.max_extent:
                    background |= mask
            free &= ~on_plane
        return background

    def _with_depth(self, depth: np.ndarray, k: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        o = self.options
        height, width = depth.shape
        valid = depth > 0
        points = _points(depth, k)
        normals = _normals(points)
        background = self._background_planes(points, normals, valid)
        foreground = valid & ~background
        jump_x = np.abs(np.diff(depth, axis=1)) > o.depth_jump * np.minimum(depth[:, 1:], depth[:, :-1])
        jump_y = np.abs(np.diff(depth, axis=0)) > o.depth_jump * np.minimum(depth[1:], depth[:-1])
        # separate pieces along depth jumps: of two neighbours across a jump, the farther pixel leaves
        # the foreground (a one-pixel seam on the far side, so the nearer object keeps its outline)
        cut = np.zeros_like(foreground)
        cut[:, 1:] |= jump_x & (depth[:, 1:] > depth[:, :-1])
        cut[:, :-1] |= jump_x & (depth[:, :-1] > depth[:, 1:])
        cut[1:] |= jump_y & (depth[1:] > depth[:-1])
        cut[:-1] |= jump_y & (depth[:-1] > depth[1:])
        pieces, count = ndimage.label(foreground & ~cut)
        area = np.bincount(pieces.ravel(), minlength=count + 1)
        keep = (area >= o.min_share * height * width) & (area <= o.max_share * height * width)
        keep[0] = False
        ids = np.zeros(count + 1, dtype=np.int32)
        ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
        return ids[pieces]

    def _colour_only(self, rgb: np.ndarray) -> np.ndarray:
        from skimage.color import rgb2lab
        from skimage.segmentation import felzenszwalb

        o = self.options
        height, width = rgb.shape[:2]
        scale = o.colour_scale * (height * width) / (320 * 240)
        segments = felzenszwalb(rgb2lab(rgb), scale=scale, sigma=0.8, min_size=max(4, int(o.colour_min_share * height * width)), channel_axis=-1)
        count = int(segments.max()) + 1
        area = np.bincount(segments.ravel(), minlength=count)
        keep = (area >= o.colour_min_share * height * width) & (area <= o.max_share * height * width)
        sides = np.zeros((count, 4), dtype=bool)
        for side, border in enumerate((segments[0], segments[-1], segments[:, 0], segments[:, -1])):
            sides[np.unique(border), side] = True
        keep &= sides.sum(axis=1) < 3
        ids = np.zeros(count, dtype=np.int32)
        ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
        return ids[segments]
