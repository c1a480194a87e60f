"""Depth from the structure-from-motion points, for colour-only captures without a depth model.

Each frame's keypoints with a triangulated 3D point (u, v and their depth in the scene's unit) are
triangulated in the image (Delaunay) and their *inverse* depth is interpolated linearly inside each
triangle: a plane's inverse depth is affine in the image, so a triangle whose three points lie on
one planar surface is interpolated exactly. Pixels outside the points' hull, and inside triangles
with an edge longer than :data:`MAX_EDGE_SHARE` of the image diagonal (they bridge gaps where
nothing was matched, often across a depth edge), stay missing (0). A frame with fewer than
:data:`MIN_POINTS` points gets no depth.

The result is coarse: wrong at depth edges inside a triangle and missing where nothing was matched.
It is enough to tell training where the surfaces are (without it, a colour-only run fits its views
with a semi-transparent fog and forms no surface); ``prepare.json`` records ``"depth_source":
"sfm"``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import Delaunay, QhullError

from .frames import StagedFrames

__all__ = ["MAX_EDGE_SHARE", "MIN_POINTS", "SfmDepthFrames", "interpolate_point_depth"]

MAX_EDGE_SHARE = 0.15
MIN_POINTS = 20


def interpolate_point_depth(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Dense depth (H, W) float32 from keypoints ``points`` (n, 3) = (u, v, depth), pixel centres at
    integer coordinates: inverse depth interpolated linearly in their Delaunay triangles; 0 where
    missing (see the module docstring)."""
    depth = np.zeros((height, width), dtype=np.float32)
    points = np.asarray(points, dtype=np.float64)
    points = points[(points[:, 2] > 0) & np.isfinite(points).all(axis=1)] if len(points) else points.reshape(0, 3)
    if len(points) < MIN_POINTS:
        return depth
    uv, inverse = points[:, :2], 1.0 / points[:, 2]
    try:
        triangulation = Delaunay(uv)
    except QhullError:  # all points on a line
        return depth
    corners = uv[triangulation.simplices]  # (t, 3, 2)
    edges = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=-1).max(axis=1)
    too_long = edges > MAX_EDGE_SHARE * np.hypot(height, width)
    v, u = np.mgrid[0:height, 0:width]
    pixels = np.stack([u.ravel(), v.ravel()], axis=-1).astype(np.float64)
    simplex = triangulation.find_simplex(pixels)
    inside = simplex >= 0
    inside[inside] = ~too_long[simplex[inside]]
    chosen = simplex[inside]
    transform = triangulation.transform[chosen]  # (m, 3, 2): barycentric coordinates of the pixels
    first_two = np.einsum("mij,mj->mi", transform[:, :2], pixels[inside] - transform[:, 2])
    weights = np.concatenate([first_two, 1.0 - first_two.sum(axis=1, keepdims=True)], axis=1)
    interpolated = (weights * inverse[triangulation.simplices[chosen]]).sum(axis=1)
    flat = depth.reshape(-1)
    flat[np.flatnonzero(inside)] = np.where(interpolated > 0, 1.0 / np.maximum(interpolated, 1e-12), 0.0)
    return depth


class SfmDepthFrames:
    """Depth of the staged frames interpolated from their SfM keypoints; :meth:`read` gives float32
    (H, W) in the scene's unit at the frames' size (0 = missing), as :class:`.depth.DepthFrames` does.

    Args:
        observations: frame name -> (N, 3) keypoints (u, v) of the staged frame (layout pixel
            convention) with the depth of their 3D point in the scene's unit.
    """

    @staticmethod
    def usable(observations: dict[str, np.ndarray] | None) -> bool:
        """Whether any frame has the :data:`MIN_POINTS` points that interpolation needs."""
        return any(len(points) >= MIN_POINTS for points in (observations or {}).values())

    def __init__(self, frames: StagedFrames, observations: dict[str, np.ndarray] | None) -> None:
        self.frames, self.observations = frames, observations or {}
        self.covered: dict[str, float] = {}

    def read(self, name: str) -> np.ndarray:
        height, width = self.frames.hw
        depth = interpolate_point_depth(self.observations.get(name, np.zeros((0, 3))), height, width)
        self.covered[name] = float((depth > 0).mean())
        return depth

    def summary(self) -> dict:
        """What ``prepare.json`` records (after every frame was read): the share of pixels given a depth."""
        shares = list(self.covered.values())
        return {"source": "sfm", "median_pixel_share": round(float(np.median(shares)), 3) if shares else 0.0,
                "frames_without_depth": sorted(n for n, share in self.covered.items() if share == 0.0)}
