"""Which 3D points the cameras of a scene observed: on the measured surface of some frame."""

from __future__ import annotations

import numpy as np


class VisibilityCuller:
    """Keeps points observed by some frame (projects in front of the camera, within ``tolerance``
    of that frame's depth). Poses/intrinsics/depths of a scene in world metres; ``labels`` (F, H, W)
    optional per-pixel thing classes of the frames (-1: stuff or none), for :meth:`counts`."""

    def __init__(
        self, poses_world: np.ndarray, intrinsics: np.ndarray, depths: np.ndarray | None, tolerance: float = 0.05,
        *,
        labels: np.ndarray | None = None,
    ) -> None:
        self.poses = poses_world
        self.intrinsics = intrinsics
        self.depths = depths
        self.tolerance = tolerance
        self.labels = labels

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: the points some frame observed. Each frame tests only the points no earlier
        frame saw (most are seen within a few frames)."""
        if self.depths is None or len(points) == 0:
            return np.ones(len(points), dtype=bool)
        seen = np.zeros(len(points), dtype=bool)
        pending = np.arange(len(points))
        for f in range(len(self.depths)):
            hit = self._on_depth(points[pending], f)[0]
            seen[pending[hit]] = True
            pending = pending[~hit]
            if not len(pending):
                break
        return seen

    def counts(self, points: np.ndarray, label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per point (N,): in how many frames it lies on the measured depth, and in how many of
        those the frame's ``labels`` say ``label`` there (zeros without labels or ``label``)."""
        observed = np.zeros(len(points), dtype=np.int64)
        agreeing = np.zeros(len(points), dtype=np.int64)
        if self.depths is None or len(points) == 0:
            return observed, agreeing
        for f in range(len(self.depths)):
            seen, v, u = self._on_depth(points, f)
            observed += seen
            if self.labels is not None and label is not None:
                said = np.zeros(len(points), dtype=bool)
                said[seen] = self.labels[f][v[seen], u[seen]] == label
                agreeing += said
        return observed, agreeing

    def _on_depth(self, points: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whether frame ``f`` observed each point (N,) bool, and the pixel rows and columns (N,) they project to."""
        pose, k, depth = self.poses[f], self.intrinsics[f], self.depths[f]
        height, width = depth.shape
        camera = (points - pose[:3, 3]) @ pose[:3, :3]
        z = camera[:, 2]
        front = z > 1e-3
        u = np.round(k[0, 0] * camera[:, 0] / np.where(front, z, 1) + k[0, 2]).astype(int)
        v = np.round(k[1, 1] * camera[:, 1] / np.where(front, z, 1) + k[1, 2]).astype(int)
        inside = front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        measured = np.zeros(len(points))
        measured[inside] = depth[v[inside], u[inside]]
        return inside & (measured > 0) & (np.abs(measured - z) < self.tolerance), v, u
